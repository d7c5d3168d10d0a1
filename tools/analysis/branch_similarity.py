"""Cosine similarity between the branches of every OREPA layer (the paper's Fig. 7).

    python tools/analysis/branch_similarity.py CONFIG CHECKPOINT [--out DIR]
    python tools/analysis/branch_similarity.py CONFIG WORK_DIR [--out DIR]
    python tools/analysis/branch_similarity.py --compare-scalings [--epochs 3] [--out DIR]
        [--scalings vector scalar none] [--seeds 1] [--cfg-options KEY=VALUE ...]

A branch's contribution is its kernel times its scale (``scale_b[o] K_b[o]``,
the term it adds to the squeezed kernel); two contributions are compared as
flat vectors. The first form reads one train-form checkpoint; the second
every ``epoch_N.pth`` / ``iter_N.pth`` of a run's work dir, in order. Both
write ``OUT/branch_similarity.json`` and ``OUT/branch_similarity.png`` (a heat
map per layer and the mean over layers, of the last checkpoint), and for a
run ``OUT/branch_similarity_over_run.png`` (mean |cosine| per checkpoint).

``--compare-scalings`` trains OREPA-ResNet-18 with vector, scalar and no
scaling (the Table 3 ablation configs) on the demo digits
(:mod:`mmorepa.analysis.demo_data`, same seed and schedule) and records the
cosines at the start and after every epoch, and after an epoch also the
cosines between the branches' *changes* since the start (whether training
moves the branches alike, sec. 3.4): ``OUT/scalings.json``,
``OUT/scalings.png`` (side by side) and ``OUT/scaling_<name>.png`` (every
layer after training). With ``--seeds N`` each scaling trains with seeds
0 .. N-1; it prints the validation top-1 and the last epoch's mean |cosine|
(of the contributions and of their changes) as mean ± std (min-max), the
pictures show seed 0, and the JSON keeps every run. The logic is
:mod:`mmorepa.analysis.branch_similarity`.
"""
import argparse
import os
from collections import OrderedDict

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.analysis.branch_similarity import (SCALING_CONFIGS, checkpoint_similarity,
                                                public_record, run_checkpoints,
                                                scaling_seed_summary, train_scaling)
from mmorepa.analysis.cli import add_demo_training_arguments
from mmorepa.analysis.demo_data import ensure_demo_digits
from mmorepa.analysis.figures import (plot_layer_heat_maps, plot_scaling_comparison,
                                      plot_similarity_over_run)
from mmorepa.analysis.json_output import write_json
from mmorepa.analysis.seeds import format_spread, seed_list, seed_work_dir
from mmorepa.engine import tool_main
from mmorepa.engine.cli import load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='training config of the checkpoint(s)')
    parser.add_argument('checkpoint', nargs='?',
                        help='a train-form checkpoint, or a work dir: every epoch_N.pth / '
                        'iter_N.pth in it, in order')
    parser.add_argument('--compare-scalings', action='store_true',
                        help='train the vector / scalar / no scaling configs on the demo '
                        'digits and compare (no CONFIG, CHECKPOINT)')
    parser.add_argument('--scalings', nargs='+', default=list(SCALING_CONFIGS),
                        choices=list(SCALING_CONFIGS), metavar='SCALING',
                        help=f'with --compare-scalings: which of {list(SCALING_CONFIGS)} '
                        '(default: all)')
    add_demo_training_arguments(parser, 'work_dirs/branch_similarity',
                                when='with --compare-scalings: ')
    args = parser.parse_args(argv)
    if args.compare_scalings:
        if args.config or args.checkpoint:
            parser.error('--compare-scalings trains its own models: give no CONFIG and '
                         'CHECKPOINT')
        if args.epochs <= 0:
            parser.error(f'--epochs must be a positive int, got {args.epochs}')
    elif not (args.config and args.checkpoint):
        parser.error('give CONFIG and CHECKPOINT (a checkpoint or a work dir), or '
                     '--compare-scalings')
    return args


def analyse_checkpoints(args) -> None:
    cfg = load_config(args)
    paths = (run_checkpoints(args.checkpoint) if os.path.isdir(args.checkpoint)
             else [(None, None, args.checkpoint)])
    records = []
    for index, (unit, step, path) in enumerate(paths, 1):
        print(f'[{index}/{len(paths)}] {path}', flush=True)
        record = dict(checkpoint=path, unit=unit, step=step, **checkpoint_similarity(cfg, path))
        print(f'    {len(record["layers"])} OREPA layers, mean |cosine| between branches '
              f'{record["mean_off_diagonal_abs"]:.3f}', flush=True)
        records.append(record)
    os.makedirs(args.out, exist_ok=True)
    last = records[-1]
    heat_maps = os.path.join(args.out, 'branch_similarity.png')
    plot_layer_heat_maps(*last['_tensors'], heat_maps,
                         f'branch cosines, {os.path.basename(last["checkpoint"])}')
    written = [heat_maps]
    if len(records) > 1:
        curve = os.path.join(args.out, 'branch_similarity_over_run.png')
        plot_similarity_over_run(records, curve, f'branch cosines over {args.checkpoint}')
        written.append(curve)
    written.append(write_json(os.path.join(args.out, 'branch_similarity.json'), vars(args),
                              dict(checkpoints=[public_record(r) for r in records])))
    print_means(last)
    print('wrote ' + ', '.join(written))


def compare_scalings(args) -> None:
    data_root = ensure_demo_digits(args.data_root or os.path.join(args.out, 'digits'))
    variants, val_metrics, seed_runs = OrderedDict(), {}, OrderedDict()
    plan = [(seed, name) for seed in seed_list(args.seeds) for name in args.scalings]
    for index, (seed, name) in enumerate(plan, 1):
        seed_note = f', seed {seed}' if args.seeds > 1 else ''
        print(f'[{index}/{len(plan)}] scaling={name}{seed_note}: training {args.epochs} '
              f'epoch(s) on the demo digits ({SCALING_CONFIGS[name]})', flush=True)
        records, val = train_scaling(
            name, data_root, seed_work_dir(os.path.join(args.out, 'train', name), seed),
            args.epochs, args.cfg_options, seed)
        seed_runs.setdefault(name, []).append((seed, records, val))
        if seed == 0:  # the pictures and the per-epoch table: seed 0
            variants[name], val_metrics[name] = records, val
            plot_layer_heat_maps(*records[-1]['_tensors'],
                                 os.path.join(args.out, f'scaling_{name}.png'),
                                 f'branch cosines, scaling={name}, after epoch {args.epochs}')
    comparison = os.path.join(args.out, 'scalings.png')
    plot_scaling_comparison(variants, comparison,
                            f'OREPA-ResNet-18 on the demo digits, {args.epochs} epoch(s): '
                            'mean branch cosine over layers')
    if args.seeds > 1:
        json_path = write_json(os.path.join(args.out, 'scalings.json'), vars(args), dict(
            variants=OrderedDict((name, dict(config=SCALING_CONFIGS[name],
                                             **scaling_seed_summary(runs)))
                                 for name, runs in seed_runs.items())))
    else:
        json_path = write_json(os.path.join(args.out, 'scalings.json'), vars(args), dict(
            variants=OrderedDict((name, dict(config=SCALING_CONFIGS[name],
                                             val_metrics=val_metrics[name],
                                             records=[public_record(r) for r in records]))
                                 for name, records in variants.items())))
    epochs = [f'epoch {record["epoch"]}' for record in next(iter(variants.values()))]
    print('\nmean |cosine| between branches (contributions; changes since epoch 0), over layers')
    print(f'{"scaling":8s} ' + ' '.join(f'{epoch:>15s}' for epoch in epochs))
    for name, records in variants.items():
        cells = [f'{r["mean_off_diagonal_abs"]:6.3f}; ' +
                 ('     -' if r['moved'] is None else f'{r["moved"]["mean_off_diagonal_abs"]:6.3f}')
                 for r in records]
        print(f'{name:8s} ' + ' '.join(f'{cell:>15s}' for cell in cells) +
              f'   val {val_metrics[name]}')
    for name, records in variants.items():
        print(f'\nscaling={name}, after epoch {records[-1]["epoch"]}:')
        print_means(records[-1])
        if records[-1]['moved'] is not None:
            print('their changes since epoch 0:')
            print_means(records[-1]['moved'])
    if args.seeds > 1:
        print_seed_spread(seed_runs)
    print(f'wrote {comparison}, {json_path} and scaling_<name>.png in {args.out}')


def print_seed_spread(seed_runs: dict) -> None:
    """Top-1 and the last epoch's mean |cosine| over seeds, per scaling."""
    summaries = {name: scaling_seed_summary(runs) for name, runs in seed_runs.items()}
    seeds = len(next(iter(seed_runs.values())))
    print(f'\nafter the last epoch, mean ± std (min-max) over {seeds} seeds')
    print(f'{"scaling":8s} {"val top-1 %":>28s} {"mean |cosine|":>28s} '
          f'{"changes since epoch 0":>28s}')
    for name, summary in summaries.items():
        print(f'{name:8s} {format_spread(summary["val_top1"]):>28s} '
              f'{format_spread(summary["mean_off_diagonal_abs"], 3):>28s} '
              f'{format_spread(summary["moved_mean_off_diagonal_abs"], 3):>28s}')


def print_means(record: dict) -> None:
    """The mean cosine matrix of the main branch set, as a table."""
    names = record['branches']
    print(f'mean cosine over layers ({len(names)} branches):')
    print(' ' * 9 + ' '.join(f'{name:>8s}' for name in names))
    for name, row in zip(names, record['mean_cosine']):
        print(f'{name:>8s} ' + ' '.join(f'{float(value):8.3f}' for value in row))


@tool_main
def main(argv=None):
    args = parse_args(argv)
    if args.compare_scalings:
        compare_scalings(args)
    else:
        analyse_checkpoints(args)


if __name__ == '__main__':
    raise SystemExit(main())
