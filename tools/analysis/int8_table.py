"""Float32, post-training INT8 and quantization-aware INT8 of five models on the
demo data, and how their deployed kernels spread (docs/int8.md).

    python tools/analysis/int8_table.py [--epochs 6] [--models ...] \
        [--weight-ranges full reduced] [--calib-batches 8] [--rounds 5] \
        [--repeats 20] [--seeds 1] [--out work_dirs/int8_table]

Each model (plain ResNet-18, OREPA-ResNet-18, DBB-ResNet-18, RepVGG-A0,
OREPA-VGG-A0; the shipped configs) trains by the same demo recipe
(:mod:`mmorepa.analysis.demo_training`), is squeezed by the export path and
quantized by ``tools/quantize.py``'s path (PTQ) to each weight range. Models
whose layers can train on their INT8 deploy grid also train once per range
with ``model.backbone.quantize_kernels=<range>`` and go to INT8 on the grid
they trained on (QAT). A finished run is reused when its last checkpoint
exists, so a second call only quantizes and times again. With ``--seeds N``
every run trains with seeds 0 .. N-1 (seed 0 in the single-seed work dir,
seed k in ``...-seed<k>``) and the tables print mean ± std (min-max) over
them; the JSON keeps every run. The last column is the mean training loss of
the last epoch, and a model whose loss ends more than 2x the median of the
others' is marked as not converged.
Writes ``int8_table.json`` and ``int8_weights.png`` under ``--out``; the logic
is :mod:`mmorepa.analysis.int8_table`.
"""
import argparse
import os
from collections import OrderedDict

import mmorepa  # noqa: F401  (registers the plugin)
from mmorepa.analysis.cli import add_demo_training_arguments
from mmorepa.analysis.demo_data import ensure_demo_digits
from mmorepa.analysis.figures import plot_weight_ranges
from mmorepa.analysis.int8_table import (CONVERGENCE_FACTOR, MODELS, converged, quantize_run,
                                         row_summary, seed_summary, trained_deploy)
from mmorepa.analysis.json_output import write_json
from mmorepa.analysis.seeds import format_spread, seed_list, seed_work_dir
from mmorepa.engine import tool_main
from mmorepa.engine.cli import positive_int
from mmorepa.quantization import WEIGHT_RANGES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS))
    parser.add_argument('--weight-ranges', nargs='+', choices=tuple(WEIGHT_RANGES),
                        default=list(WEIGHT_RANGES),
                        help='INT8 weight grids to quantize to (default: both)')
    parser.add_argument('--calib-batches', type=positive_int, default=8,
                        help='calibration batches of the training data (default: 8)')
    parser.add_argument('--rounds', type=positive_int, default=5,
                        help='latency rounds (default: 5)')
    parser.add_argument('--repeats', type=positive_int, default=20,
                        help='calls per latency round (default: 20)')
    add_demo_training_arguments(parser, 'work_dirs/int8_table')
    return parser.parse_args(argv)


def float_rows(rows: dict) -> dict:
    """Model name -> the row of its float run (the first weight range quantized)."""
    found = OrderedDict()
    for label, row in rows.items():
        name, training, _ = label.split(', ')
        if training == 'float':
            found.setdefault(name, row)
    return found


def print_losses(rows: dict, value) -> None:
    """The last epoch's training loss of every float run, and whether it converged."""
    losses = float_rows(rows)
    print(f'\n{"training loss, last epoch (float runs)":40s} {"loss":>24s}')
    for name, row in losses.items():
        others = [value(other) for other_name, other in losses.items() if other_name != name]
        verdict = '' if converged(value(row), others) else \
            f'  not converged: above {CONVERGENCE_FACTOR:g}x the median of the others'
        loss = row['train_loss']
        text = format_spread(loss, 3) if isinstance(loss, dict) else f'{loss:.3f}'
        print(f'{name:40s} {text:>24s}{verdict}')


def print_seed_tables(rows: dict) -> None:
    seeds = len(next(iter(rows.values()))['seeds'])
    print(f'\nmean ± std (min-max) over {seeds} seeds')
    print(f'{"model, training, INT8 weights":40s} {"fp32":>22s} {"INT8":>22s} '
          f'{"SQNR dB":>18s} {"INT8/fp32 latency":>18s}')
    for label, row in rows.items():
        print(f'{label:40s} {format_spread(row["fp32"]):>22s} {format_spread(row["int8"]):>22s} '
              f'{format_spread(row["sqnr"], 1, False):>18s} '
              f'{format_spread(row["latency"], 2, False):>17s}x')
    print(f'\n{"deployed kernels (float runs)":40s} {"weight SQNR dB":>15s} {"worst layer":>12s} '
          f'{"max|w|/std":>11s} {"channel range":>14s}')
    for name, row in float_rows(rows).items():
        print(f'{name:40s} {row["weight_sqnr"]["mean"]:15.1f} '
              f'{row["worst_weight_sqnr"]["mean"]:12.1f} {row["peak_to_std"]["mean"]:11.1f} '
              f'{row["channel_range"]["mean"]:14.1f}')
    print_losses(rows, lambda row: row['train_loss']['mean'])


def print_tables(rows: dict) -> None:
    print(f'\n{"model, training, INT8 weights":40s} {"fp32":>7s} {"INT8":>7s} {"drop":>6s} '
          f'{"SQNR dB":>8s} {"agree":>6s} {"INT8/fp32 latency":>22s}')
    for label, row in rows.items():
        latency = row['latency']
        print(f'{label:40s} {row["fp32"]:7.2f} {row["int8"]:7.2f} {row["drop"]:6.2f} '
              f'{row["sqnr"]:8.1f} {100 * row["agreement"]:5.1f}% '
              f'{latency["median"]:8.2f}x ({latency["min"]:.2f}-{latency["max"]:.2f})')
    print(f'\n{"deployed kernels (float runs)":40s} {"weight SQNR dB":>15s} {"worst layer":>12s} '
          f'{"max|w|/std":>11s} {"channel range":>14s}')
    for name, row in float_rows(rows).items():
        print(f'{name:40s} {row["weight_sqnr"]:15.1f} {row["worst_weight_sqnr"]:12.1f} '
              f'{row["peak_to_std"]:11.1f} {row["channel_range"]:14.1f}')
    print_losses(rows, lambda row: row['train_loss'])


@tool_main
def main(argv=None):
    args = parse_args(argv)
    data_root = ensure_demo_digits(args.data_root or os.path.join(args.out, 'digits'))
    runs_per_seed = [(name, None) for name in args.models] + [
        (name, qat_range) for name in args.models if MODELS[name][1]
        for qat_range in args.weight_ranges]
    # Seed by seed: an interrupted table has whole seeds, and a rerun reuses them.
    plan = [(seed, name, qat_range) for seed in seed_list(args.seeds)
            for name, qat_range in runs_per_seed]
    seed_runs = OrderedDict()
    for index, (seed, name, qat_range) in enumerate(plan, 1):
        training = f'QAT {qat_range}' if qat_range else 'float'
        seed_note = f', seed {seed}' if args.seeds > 1 else ''
        print(f'[{index}/{len(plan)}] {name}, {training}{seed_note}: {args.epochs} epoch(s) on '
              'the demo digits, squeeze, INT8', flush=True)
        work_dir = seed_work_dir(
            os.path.join(args.out, name, f'qat-{qat_range}' if qat_range else 'float'), seed)
        cfg, deploy, losses = trained_deploy(name, data_root, work_dir, args.epochs, qat_range,
                                             args.cfg_options, seed)
        for weight_range in [qat_range] if qat_range else args.weight_ranges:
            label = f'{name}, {training}, {weight_range}'
            run = quantize_run(cfg, deploy, weight_range, args.calib_batches, args.rounds,
                               args.repeats)
            seed_runs.setdefault(label, []).append(dict(run, seed=seed, train_losses=losses))
    if args.seeds == 1:
        runs = OrderedDict((label, runs[0]) for label, runs in seed_runs.items())
        rows = OrderedDict((label, row_summary(run)) for label, run in runs.items())
        print_tables(rows)
    else:
        runs = seed_runs
        rows = OrderedDict((label, seed_summary(runs)) for label, runs in seed_runs.items())
        print_seed_tables(rows)
    os.makedirs(args.out, exist_ok=True)
    png_path = os.path.join(args.out, 'int8_weights.png')
    plot_weight_ranges({name: runs[0]['layers']
                        for name, runs in float_rows(seed_runs).items()}, png_path)
    json_path = write_json(os.path.join(args.out, 'int8_table.json'), vars(args),
                           dict(rows=rows, runs=runs))
    print(f'\nwrote {json_path} and {png_path}')


if __name__ == '__main__':
    raise SystemExit(main())
