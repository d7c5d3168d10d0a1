"""Training with and without OREPA's post-addition norm (the paper's Table 3, last row).

    python tools/analysis/post_addition_norm.py [--config CONFIG] [--epochs 3] [--lr LR]
        [--out work_dirs/post_addition_norm] [--cfg-options KEY=VALUE ...]

Trains the config's model (default: OREPA-ResNet-18) twice on the demo digits
(:mod:`mmorepa.analysis.demo_data`: same data, schedule and seed 0, so the
same initial weights and batches): as configured, and with the norm after
every OREPA conv (``ReparamConv2d``: the stem and both convs of each block)
replaced by ``nn.Identity``. Norms after plain convs (the 1x1 conv-BN
shortcuts of basic blocks) stay: they are not post-addition norms. The convs
keep no bias, as in the paper's ablation, which removes the norm only.

Records the loss and the total gradient norm of every update, and says
whether and when either run diverges (a non-finite loss or gradient).
Writes ``OUT/post_addition_norm.json`` and ``OUT/post_addition_norm.png``.
The logic is :mod:`mmorepa.analysis.post_addition_norm`.
"""
import argparse
import os
from collections import OrderedDict

import mmorepa  # noqa: F401  (registers the plugin)
from mmorepa.analysis.cli import add_demo_training_arguments
from mmorepa.analysis.demo_data import ROOT, ensure_demo_digits, repo_path
from mmorepa.analysis.figures import plot_training_curves
from mmorepa.analysis.json_output import write_json
from mmorepa.analysis.post_addition_norm import train_norm_variant, verdict
from mmorepa.engine import tool_main

DEFAULT_CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
WITH_NORM, WITHOUT_NORM = 'with post-addition norm', 'without post-addition norm'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help=f'classification config of an OREPA model (default: '
                        f'{DEFAULT_CONFIG})')
    parser.add_argument('--lr', type=float,
                        help="SGD learning rate (default: the demo's, 0.05 for batch 64)")
    add_demo_training_arguments(parser, 'work_dirs/post_addition_norm')
    args = parser.parse_args(argv)
    if args.epochs <= 0:
        parser.error(f'--epochs must be a positive int, got {args.epochs}')
    if args.lr is not None and not args.lr > 0:
        parser.error(f'--lr must be positive, got {args.lr}')
    config = args.config if os.path.isfile(args.config) else repo_path(args.config)
    if not os.path.isfile(config):
        parser.error(f'--config: no such file: {args.config}')
    args.config = config
    return args


@tool_main
def main(argv=None):
    args = parse_args(argv)
    data_root = ensure_demo_digits(args.data_root or os.path.join(args.out, 'digits'))
    runs = OrderedDict()
    for index, (name, without_norm) in enumerate(((WITH_NORM, False), (WITHOUT_NORM, True)), 1):
        print(f'[{index}/2] {name}: training {args.epochs} epoch(s) on the demo digits '
              f'({os.path.relpath(args.config, ROOT)})', flush=True)
        folder = 'without_norm' if without_norm else 'with_norm'
        runs[name] = train_norm_variant(args.config, data_root, os.path.join(args.out, folder),
                                        args.epochs, without_norm, args.lr, args.cfg_options)
    print()
    for name, run in runs.items():
        print(f'{name}: {verdict(run)}; validation {run["val_metrics"]}')
    print(f'\n{"iteration":>9s} ' + ' '.join(f'{"loss":>10s} {"grad norm":>10s}' for _ in runs)
          + '   (' + ' | '.join(runs) + ')')
    rows = max(run['iterations'] for run in runs.values())
    for iteration in sorted({0, rows // 4, rows // 2, 3 * rows // 4, rows - 1}):
        cells = []
        for run in runs.values():
            record = run['records'][iteration] if iteration < run['iterations'] else None
            cells.append(f'{record["loss"]:10.4g} {record["grad_norm"]:10.4g}' if record
                         else ' ' * 21)
        print(f'{iteration + 1:9d} ' + ' '.join(cells))
    os.makedirs(args.out, exist_ok=True)
    png_path = os.path.join(args.out, 'post_addition_norm.png')
    json_path = os.path.join(args.out, 'post_addition_norm.json')
    plot_training_curves({name: run['records'] for name, run in runs.items()}, png_path,
                         f'{os.path.basename(args.config)} on the demo digits, seed 0',
                         {name: run['first_non_finite_iteration'] for name, run in runs.items()})
    write_json(json_path, vars(args), dict(runs=OrderedDict(
        (name, dict(run, verdict=verdict(run))) for name, run in runs.items())))
    print(f'\nwrote {json_path} and {png_path}')


if __name__ == '__main__':
    raise SystemExit(main())
