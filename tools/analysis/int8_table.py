"""Float32, post-training INT8 and quantization-aware INT8 of five models on the
demo data, and how their deployed kernels spread (docs/int8.md).

    python tools/analysis/int8_table.py [--epochs 6] [--models ...] \
        [--weight-ranges full reduced] [--calib-batches 8] [--rounds 5] \
        [--repeats 20] [--out work_dirs/int8_table]

Each model (plain ResNet-18, OREPA-ResNet-18, DBB-ResNet-18, RepVGG-A0,
OREPA-VGG-A0; the shipped configs) trains by the same demo recipe
(:mod:`mmorepa.analysis.demo_training`), is squeezed by the export path and
quantized by ``tools/quantize.py``'s path (PTQ) to each weight range. Models
whose layers can train on their INT8 deploy grid also train once per range
with ``model.backbone.quantize_kernels=<range>`` and go to INT8 on the grid
they trained on (QAT). A finished run is reused when its last checkpoint
exists, so a second call only quantizes and times again.
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
from mmorepa.analysis.int8_table import MODELS, quantize_run, row_summary, trained_deploy
from mmorepa.analysis.json_output import write_json
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
    for label, row in rows.items():
        if label.endswith(', float, full'):
            print(f'{label[:-len(", float, full")]:40s} {row["weight_sqnr"]:15.1f} '
                  f'{row["worst_weight_sqnr"]:12.1f} {row["peak_to_std"]:11.1f} '
                  f'{row["channel_range"]:14.1f}')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    data_root = ensure_demo_digits(args.data_root or os.path.join(args.out, 'digits'))
    plan = [(name, None) for name in args.models] + [
        (name, qat_range) for name in args.models if MODELS[name][1]
        for qat_range in args.weight_ranges]
    runs = OrderedDict()
    for index, (name, qat_range) in enumerate(plan, 1):
        training = f'QAT {qat_range}' if qat_range else 'float'
        print(f'[{index}/{len(plan)}] {name}, {training}: {args.epochs} epoch(s) on the demo '
              'digits, squeeze, INT8', flush=True)
        work_dir = os.path.join(args.out, name, f'qat-{qat_range}' if qat_range else 'float')
        cfg, deploy = trained_deploy(name, data_root, work_dir, args.epochs, qat_range,
                                     args.cfg_options)
        for weight_range in [qat_range] if qat_range else args.weight_ranges:
            label = f'{name}, {training}, {weight_range}'
            runs[label] = quantize_run(cfg, deploy, weight_range, args.calib_batches,
                                       args.rounds, args.repeats)
    rows = OrderedDict((label, row_summary(run)) for label, run in runs.items())
    print_tables(rows)
    os.makedirs(args.out, exist_ok=True)
    png_path = os.path.join(args.out, 'int8_weights.png')
    plot_weight_ranges({label.split(',')[0]: run['layers'] for label, run in runs.items()
                        if label.endswith(', float, full')}, png_path)
    json_path = write_json(os.path.join(args.out, 'int8_table.json'), vars(args),
                           dict(rows=rows, runs=runs))
    print(f'\nwrote {json_path} and {png_path}')


if __name__ == '__main__':
    raise SystemExit(main())
