"""Float32, post-training INT8 and quantization-aware INT8 of five models on the
demo data, and how their deployed kernels spread (docs/int8.md).

    python tools/analysis/int8_table.py [--epochs 6] [--models ...] \
        [--weight-ranges full reduced] [--calib-batches 8] [--rounds 5] \
        [--repeats 20] [--out work_dirs/int8_table]

Each model (plain ResNet-18, OREPA-ResNet-18, DBB-ResNet-18, RepVGG-A0,
OREPA-VGG-A0; the shipped configs) trains by the same demo recipe
(``tools/analysis/demo_training.py``), is squeezed by the export path and
quantized by ``tools/quantize.py``'s path (PTQ) to each weight range. Models
whose layers can train on their INT8 deploy grid also train once per range
with ``model.backbone.quantize_kernels=<range>`` and go to INT8 on the grid
they trained on (QAT). A finished run is reused when its last checkpoint
exists, so a second call only quantizes and times again.
Writes ``int8_table.json`` and ``int8_weights.png`` under ``--out``.
"""
import argparse
import os
import sys
from collections import OrderedDict
from typing import Optional

import numpy as np

# As a script the repository root is not on sys.path; the helpers sit beside.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mmorepa  # noqa: F401,E402  (registers the plugin)
from mmorepa.engine import export_deploy, is_reparam_config, tool_main  # noqa: E402
from mmorepa.engine.cli import positive_int  # noqa: E402
from mmorepa.quantization import WEIGHT_RANGES  # noqa: E402
from mmorepa.quantization.onnx_int8 import conv_weights  # noqa: E402
from mmorepa.quantization.ptq import float_onnx_path, quantize_checkpoint  # noqa: E402
from mmorepa.quantization.weight_ranges import channel_stats  # noqa: E402
from tools.analysis.demo_training import (add_demo_training_arguments,  # noqa: E402
                                          demo_training_config, ensure_demo_digits,
                                          repo_path, train_on_demo)
from tools.analysis.figures import plot_weight_ranges  # noqa: E402
from tools.analysis.json_output import write_json  # noqa: E402

# name: (config, whether its layers can train on their INT8 deploy grid, options).
# The RepVGG config builds mmpretrain's RepVGG; OREPARepVGG(reparam='repvgg') is
# that network (same modules and keys) with the export path, so it squeezes.
MODELS = OrderedDict([
    ('ResNet-18', ('configs/imagenet/resnet18_8xb32-120e_in1k.py', False, {})),
    ('OREPA-ResNet-18', ('configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py', True, {})),
    ('DBB-ResNet-18', ('configs/imagenet/dbb-resnet18_8xb32-120e_in1k.py', False, {})),
    ('RepVGG-A0', ('configs/imagenet/repvgg-A0_8xb32-120e_in1k.py', False,
                   {'model.backbone.type': 'OREPARepVGG', 'model.backbone.reparam': 'repvgg'})),
    ('OREPA-VGG-A0', ('configs/imagenet/orepa-vgg-A0_8xb32-120e_in1k.py', False, {})),
])
TOP1 = 'accuracy/top1'


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


def trained_deploy(args, data_root: str, name: str, qat_range: Optional[str]):
    """Train (or reuse) one run and squeeze it; its config and deploy checkpoint."""
    work_dir = os.path.join(args.out, name, f'qat-{qat_range}' if qat_range else 'float')
    options = dict(MODELS[name][2], **(args.cfg_options or {}))
    if qat_range:
        options['model.backbone.quantize_kernels'] = qat_range
    cfg = demo_training_config(repo_path(MODELS[name][0]), data_root, work_dir, args.epochs,
                               options)
    checkpoint = os.path.join(work_dir, f'epoch_{args.epochs}.pth')
    if os.path.exists(checkpoint):
        print(f'    reusing {checkpoint}', flush=True)
    else:
        train_on_demo(cfg)
    if not is_reparam_config(cfg):
        return cfg, checkpoint
    return cfg, export_deploy(cfg, checkpoint, work_dir).checkpoint


def quantize_run(args, cfg, deploy: str, weight_range: str) -> dict:
    """INT8 of one deploy checkpoint, and the spread of its deployed kernels."""
    out = os.path.join(os.path.dirname(deploy), f'int8_{weight_range}.onnx')
    report = quantize_checkpoint(cfg, deploy, out, args.calib_batches, 'train', None,
                                 args.rounds, args.repeats, weight_range,
                                 log=lambda line: print(f'    {line}', flush=True))
    return dict(report, layers=[channel_stats(weight)
                                for _, weight in conv_weights(float_onnx_path(out))])


def summary(run: dict) -> dict:
    """The row values of one run."""
    fp32, int8 = run['metrics']['fp32'][TOP1], run['metrics']['int8'][TOP1]
    layers = run['layers']
    return dict(fp32=fp32, int8=int8, drop=fp32 - int8, sqnr=run['sqnr_db'],
                agreement=run['agreement'], latency=run['latency_ratio'],
                weight_sqnr=float(np.median([x['sqnr_per_channel_db'] for x in layers])),
                worst_weight_sqnr=float(min(x['sqnr_per_channel_db'] for x in layers)),
                peak_to_std=float(np.median([x['peak_to_std'] for x in layers])),
                channel_range=float(max(x['channel_range'] for x in layers)))


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
        cfg, deploy = trained_deploy(args, data_root, name, qat_range)
        for weight_range in [qat_range] if qat_range else args.weight_ranges:
            label = f'{name}, {training}, {weight_range}'
            runs[label] = quantize_run(args, cfg, deploy, weight_range)
    rows = OrderedDict((label, summary(run)) for label, run in runs.items())
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
