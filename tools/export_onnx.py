"""Export a trained OREPA / DBB / OREPA-VGG model, squeezed, to ONNX.

    python tools/export_onnx.py CONFIG CHECKPOINT OUTPUT.onnx \
        [--backbone-only] [--shape H W] [--opset N] [--verify]

CHECKPOINT may be in train form (OREPA blocks) or already squeezed by
``tools/reparameterize.py``; CONFIG may be the training config or the
``deploy_config.py`` written beside a squeezed checkpoint. The model is
squeezed with :func:`mmorepa.reparameterize` and traced on a ``1 x C x H x W``
input.

What is exported: ``model(inputs, mode='tensor')``, i.e. the network without
the data preprocessor (the ONNX input is the normalized batch) and without
post-processing (a classifier gives logits, a segmentor the decode head's
logits, a one-stage detector its head's raw outputs); with
``--backbone-only``, ``model.backbone``. Two-stage detectors need image
metadata in their tensor forward: export their backbone.

``--verify`` runs the ONNX file in onnxruntime and compares it with the
PyTorch model as loaded (the train form for a train-form checkpoint), so it
checks squeezing and export together.
"""
import argparse

import torch

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.engine import ReparamError, is_same_file, load_trained_model, tool_main
from mmorepa.engine.cli import add_check_arguments, load_config, parse_checked
from mmorepa.engine.onnx_export import (DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, export_onnx,
                                        onnx_difference)


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments; argparse errors name the argument at fault."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config, or the deploy_config.py of a '
                        'squeezed checkpoint')
    parser.add_argument('checkpoint', help='checkpoint, train form or squeezed')
    parser.add_argument('output', help='ONNX file to write')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export model.backbone instead of the whole model')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default: {DEFAULT_OPSET})')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch on a random input of --shape; '
                        'exit 1 if they differ by more than --tolerance')
    add_check_arguments(parser)
    args = parse_checked(parser, argv)
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        parser.error(f'--opset must lie in [{MIN_OPSET}, {MAX_OPSET}], got {args.opset}')
    for source in (args.checkpoint, args.config):
        if is_same_file(args.output, source):
            parser.error(f'output {args.output} is the input file {source}; refusing to '
                         'overwrite it')
    return args


@tool_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    loaded = load_trained_model(cfg, args.checkpoint)
    in_channels = cfg.model.backbone.get('in_channels', 3)
    inputs = torch.randn(1, in_channels, *args.shape)
    count = export_onnx(loaded.model, inputs, args.output, args.opset, args.backbone_only)
    part = 'backbone' if args.backbone_only else 'model'
    print(f'exported the squeezed {part} ({loaded.form} checkpoint {args.checkpoint}) to '
          f'{args.output}: input 1x{in_channels}x{args.shape[0]}x{args.shape[1]}, '
          f'{count} output(s), opset {args.opset}')
    if not args.verify:
        return
    difference = onnx_difference(loaded.model, args.output, inputs, args.backbone_only)
    print(f'verification: onnxruntime vs PyTorch ({loaded.form}, eval) on a random input: '
          f'max relative difference {difference:.2e} (tolerance {args.tolerance:.0e})')
    if difference > args.tolerance:
        raise ReparamError(f'verification failed: {difference:.2e} > {args.tolerance:.0e}')


if __name__ == '__main__':
    raise SystemExit(main())
