"""Training with and without OREPA's post-addition norm (the paper's Table 3, last row).

    python tools/analysis/post_addition_norm.py [--config CONFIG] [--epochs 3] [--lr LR]
        [--out work_dirs/post_addition_norm] [--cfg-options KEY=VALUE ...]

Trains the config's model (default: OREPA-ResNet-18) twice on the demo digits
(``tools/demo.py``: same data, schedule and seed 0, so the same initial
weights and batches): as configured, and with the norm after every OREPA
conv (``ReparamConv2d``: the stem and both convs of each block) replaced by
``nn.Identity``. Norms after plain convs (the 1x1 conv-BN shortcuts of basic
blocks) stay: they are not post-addition norms. The convs keep no bias, as
in the paper's ablation, which removes the norm only.

Records the loss and the total gradient norm of every update, and says
whether and when either run diverges (a non-finite loss or gradient).
Writes ``OUT/post_addition_norm.json`` and ``OUT/post_addition_norm.png``.
"""
import argparse
import math
import os
import sys
from collections import OrderedDict
from typing import List, Optional

from torch import nn

# As a script the repository root is not on sys.path; the helpers sit beside.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mmorepa  # noqa: F401,E402  (registers the plugin)
from mmorepa.engine import tool_main  # noqa: E402
from mmorepa.layers import ReparamConv2d, conv_norm_pairs, set_submodule  # noqa: E402
from tools.analysis.demo_training import (add_demo_training_arguments,  # noqa: E402
                                          demo_training_config, ensure_demo_digits,
                                          repo_path, train_on_demo)
from tools.analysis.figures import plot_training_curves  # noqa: E402
from tools.analysis.json_output import write_json  # noqa: E402
from tools.analysis.training_records import ValMetricsRecorder, record_updates  # noqa: E402

DEFAULT_CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
WITH_NORM, WITHOUT_NORM = 'with post-addition norm', 'without post-addition norm'


def remove_post_addition_norms(model: nn.Module) -> List[str]:
    """Replace the norm right after every OREPA conv by ``nn.Identity``, in place.

    Returns:
        list[str]: The names of the replaced norms.

    Raises:
        ValueError: The model has no norm after a re-param conv.
    """
    replaced = [norm_name for (_, conv), (norm_name, norm) in list(conv_norm_pairs(model))
                if isinstance(conv, ReparamConv2d)
                and isinstance(norm, nn.modules.batchnorm._BatchNorm)]
    if not replaced:
        raise ValueError(f'{type(model).__name__} has no BatchNorm right after a re-param '
                         'conv: no post-addition norm to remove')
    for name in replaced:
        set_submodule(model, name, nn.Identity())
    return replaced


def first_non_finite(records: List[dict]) -> Optional[int]:
    """The first iteration (from 1) whose loss or gradient norm is not finite."""
    for iteration, record in enumerate(records, 1):
        if not (math.isfinite(record['loss']) and math.isfinite(record['grad_norm'])):
            return iteration
    return None


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


def train_variant(args, data_root: str, name: str, without_norm: bool) -> dict:
    folder = 'without_norm' if without_norm else 'with_norm'
    cfg = demo_training_config(args.config, data_root, os.path.join(args.out, folder),
                               args.epochs, args.cfg_options)
    if args.lr is not None:
        cfg.optim_wrapper.optimizer.lr = args.lr
    record_updates(cfg)
    removed = []

    def prepare(runner) -> None:
        if without_norm:
            model = getattr(runner.model, 'module', runner.model)
            removed.extend(remove_post_addition_norms(model))
            print(f'    replaced {len(removed)} post-addition norms by nn.Identity '
                  f'({removed[0]}, ..., {removed[-1]})', flush=True)

    validation = ValMetricsRecorder()
    runner = train_on_demo(cfg, hooks=[validation], prepare=prepare)
    records = runner.optim_wrapper.records
    broken = first_non_finite(records)
    finite = [r for r in records if math.isfinite(r['loss']) and math.isfinite(r['grad_norm'])]
    return dict(records=records, removed_norms=removed, first_non_finite_iteration=broken,
                iterations=len(records), lr=cfg.optim_wrapper.optimizer.lr,
                final_loss=records[-1]['loss'] if records else float('nan'),
                max_grad_norm=max((r['grad_norm'] for r in finite), default=float('nan')),
                val_metrics=validation.metrics[-1] if validation.metrics else {})


def verdict(run: dict) -> str:
    broken = run['first_non_finite_iteration']
    if broken is not None:
        return f'diverged: non-finite loss or gradient from iteration {broken}'
    return (f'did not diverge in {run["iterations"]} iterations (final loss '
            f'{run["final_loss"]:.4g}, largest gradient norm {run["max_grad_norm"]:.4g})')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    data_root = ensure_demo_digits(args.data_root or os.path.join(args.out, 'digits'))
    runs = OrderedDict()
    for index, (name, without_norm) in enumerate(((WITH_NORM, False), (WITHOUT_NORM, True)), 1):
        print(f'[{index}/2] {name}: training {args.epochs} epoch(s) on the demo digits '
              f'({os.path.relpath(args.config, ROOT)})', flush=True)
        runs[name] = train_variant(args, data_root, name, without_norm)
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
