"""Training with and without OREPA's post-addition norm (the paper's Table 3, last row).

    python tools/analysis/post_addition_norm.py [--config CONFIG] [--epochs 3] [--lr LR]
        [--seeds 1] [--out work_dirs/post_addition_norm] [--cfg-options KEY=VALUE ...]

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
With ``--seeds N`` both variants train with seeds 0 .. N-1 (one seed for the
pair, as above); it prints each seed's verdict and the validation top-1 and
final loss as mean ± std (min-max), and the JSON keeps every run.
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
from mmorepa.analysis.post_addition_norm import seed_summary, train_norm_variant, verdict
from mmorepa.analysis.seeds import format_spread, seed_list, seed_work_dir
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


def print_seeds(summaries: dict) -> None:
    for name, summary in summaries.items():
        print(f'{name}:')
        for run in summary['seeds']:
            print(f'    seed {run["seed"]}: {run["verdict"]}; validation {run["val_metrics"]}')
    print(f'\n{"over " + str(len(summary["seeds"])) + " seeds":28s} {"val top-1 %":>28s} '
          f'{"final loss":>28s} {"diverged":>9s}')
    for name, summary in summaries.items():
        print(f'{name:28s} {format_spread(summary["val_top1"]):>28s} '
              f'{format_spread(summary["final_loss"], 3):>28s} '
              f'{summary["diverged"]:>5d} / {len(summary["seeds"])}')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    data_root = ensure_demo_digits(args.data_root or os.path.join(args.out, 'digits'))
    seed_runs = OrderedDict()
    variants = ((WITH_NORM, False), (WITHOUT_NORM, True))
    plan = [(seed, name, without_norm) for seed in seed_list(args.seeds)
            for name, without_norm in variants]
    for index, (seed, name, without_norm) in enumerate(plan, 1):
        seed_note = f', seed {seed}' if args.seeds > 1 else ''
        print(f'[{index}/{len(plan)}] {name}{seed_note}: training {args.epochs} epoch(s) on the '
              f'demo digits ({os.path.relpath(args.config, ROOT)})', flush=True)
        folder = 'without_norm' if without_norm else 'with_norm'
        seed_runs.setdefault(name, []).append((seed, train_norm_variant(
            args.config, data_root, seed_work_dir(os.path.join(args.out, folder), seed),
            args.epochs, without_norm, args.lr, args.cfg_options, seed)))
    if args.seeds > 1:
        write_seeds(args, seed_runs)
        return
    runs = OrderedDict((name, runs[0][1]) for name, runs in seed_runs.items())
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


def write_seeds(args, seed_runs: dict) -> None:
    summaries = OrderedDict((name, seed_summary(runs)) for name, runs in seed_runs.items())
    print()
    print_seeds(summaries)
    os.makedirs(args.out, exist_ok=True)
    png_path = os.path.join(args.out, 'post_addition_norm.png')
    json_path = os.path.join(args.out, 'post_addition_norm.json')
    plot_training_curves({f'{name}, seed {seed}': run['records']
                          for name, runs in seed_runs.items() for seed, run in runs},
                         png_path, f'{os.path.basename(args.config)} on the demo digits, '
                         f'seeds 0-{args.seeds - 1}',
                         {f'{name}, seed {seed}': run['first_non_finite_iteration']
                          for name, runs in seed_runs.items() for seed, run in runs})
    write_json(json_path, vars(args), dict(runs=summaries))
    print(f'\nwrote {json_path} and {png_path}')


if __name__ == '__main__':
    raise SystemExit(main())
