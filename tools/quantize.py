"""Quantize a deploy checkpoint to INT8 (onnxruntime) and compare it with float32.

    python tools/quantize.py CONFIG DEPLOY_CHECKPOINT OUT.onnx \
        [--calib-batches 8] [--calib-split train] [--test-batches N] \
        [--weight-range full|reduced] [--rounds 5] [--repeats 20] [--json FILE] \
        [--cfg-options ...]

DEPLOY_CHECKPOINT is a squeezed checkpoint (``DeployCheckpointHook`` or
``tools/reparameterize.py`` writes it); CONFIG is its training config or the
``deploy_config.py`` beside it. The squeezed model is exported to ONNX and
quantized by onnxruntime (static, QDQ): INT8 weights per output channel,
activations calibrated on ``--calib-batches`` batches of the config's
``--calib-split`` dataloader (test pipeline). A checkpoint of a run trained
with ``quantize_kernels`` carries its INT8 weight grid: it is used as it is,
and only the activations are calibrated. ``--weight-range reduced`` puts the
weights on [-64, 64] (onnxruntime's ``reduce_range``), which x86 CPUs without
VNNI need: their integer convolutions saturate with full-range weights.

Writes OUT.onnx (INT8) and OUT_fp32.onnx, then prints float32 vs INT8 on the
config's test data (classifiers, segmentors, one-stage detectors): the
config's own metric, output SQNR, prediction
agreement, and batch-1 CPU latency of both with their ratio over rounds.
docs/int8.md explains the numbers.
"""
import argparse
import json

from mmengine.config import DictAction

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.engine import is_same_file, tool_main
from mmorepa.engine.checkpoint_io import atomic_output
from mmorepa.engine.cli import load_config, positive_int
from mmorepa.quantization import WEIGHT_RANGES
from mmorepa.quantization.ptq import CALIBRATION_SPLITS, float_onnx_path, quantize_checkpoint


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments; argparse errors name the argument at fault."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config, or the deploy_config.py beside '
                        'the deploy checkpoint')
    parser.add_argument('checkpoint', help='deploy (squeezed) checkpoint')
    parser.add_argument('output', help='INT8 ONNX file to write (the float32 one goes beside '
                        'it as <name>_fp32.onnx)')
    parser.add_argument('--calib-batches', type=positive_int, default=8,
                        help='calibration batches (default: 8)')
    parser.add_argument('--calib-split', choices=CALIBRATION_SPLITS, default='train',
                        help='dataloader whose images calibrate (default: train)')
    parser.add_argument('--test-batches', type=positive_int,
                        help='compare on this many test batches (default: all)')
    parser.add_argument('--weight-range', choices=tuple(WEIGHT_RANGES),
                        help="weight grid: 'full' [-127, 127] or 'reduced' [-64, 64] "
                        "(default: the checkpoint's grid, else full)")
    parser.add_argument('--rounds', type=positive_int, default=5,
                        help='latency rounds (default: 5)')
    parser.add_argument('--repeats', type=positive_int, default=20,
                        help='calls per latency round (default: 20)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')
    args = parser.parse_args(argv)
    outputs = [args.output, float_onnx_path(args.output)] + ([args.json] if args.json else [])
    for output in outputs:
        for source in (args.checkpoint, args.config):
            if is_same_file(output, source):
                parser.error(f'output {output} is the input file {source}; refusing to '
                             'overwrite it')
    return args


def _metric_lines(report) -> list:
    rows = []
    for key in report['metrics']['fp32']:
        fp32, int8 = report['metrics']['fp32'][key], report['metrics']['int8'][key]
        rows.append((key, f'{fp32:.2f}', f'{int8:.2f}', f'{int8 - fp32:+.2f}'))
    return rows


@tool_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    report = quantize_checkpoint(cfg, args.checkpoint, args.output, args.calib_batches,
                                 args.calib_split, args.test_batches, args.rounds,
                                 args.repeats, args.weight_range)
    latency = report['latency_s']
    ratio = report['latency_ratio']
    median = {kind: sorted(times)[len(times) // 2] * 1e3 for kind, times in latency.items()}
    print(f'\nwrote {args.output} (INT8) and {float_onnx_path(args.output)} (float32); '
          f'INT8 weights: {report["weights"]}, {report["weight_range"]} range')
    print(f'{"":24s} {"float32":>10s} {"INT8":>10s} {"change":>8s}')
    for key, fp32, int8, change in _metric_lines(report):
        print(f'{key:24s} {fp32:>10s} {int8:>10s} {change:>8s}')
    print(f'{"output SQNR (dB)":24s} {"":>10s} {report["sqnr_db"]:>10.1f}')
    print(f'{"prediction agreement":24s} {"":>10s} {100 * report["agreement"]:>9.2f}%')
    print(f'{"latency, batch 1 (ms)":24s} {median["fp32"]:>10.3f} {median["int8"]:>10.3f}')
    print(f'INT8 / float32 latency: {ratio["median"]:.2f}x (min {ratio["min"]:.2f}, '
          f'max {ratio["max"]:.2f}) over {args.rounds} rounds')
    if args.json:
        with atomic_output(args.json) as temporary, open(temporary, 'w') as file:
            json.dump(report, file, indent=2)


if __name__ == '__main__':
    raise SystemExit(main())
