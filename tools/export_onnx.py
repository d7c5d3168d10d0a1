"""Export a trained OREPA / DBB / OREPA-VGG model, squeezed, to ONNX.

    python tools/export_onnx.py CONFIG CHECKPOINT OUTPUT.onnx \
        [--backbone-only] [--shape H W] [--opset N] [--verify]

CHECKPOINT may be in train form (OREPA blocks) or already squeezed by
``tools/reparameterize.py``; CONFIG may be the training config or the
``deploy_config.py`` written beside a squeezed checkpoint. The model is put in
eval mode, squeezed with :func:`mmorepa.reparameterize` and traced on a
``1 x C x H x W`` input.

What is exported: ``model(inputs, mode='tensor')``, i.e. the network without
the data preprocessor (the ONNX input is the normalized batch) and without
post-processing (a classifier gives logits, a segmentor the decode head's
logits, a one-stage detector its head's raw outputs); with
``--backbone-only``, ``model.backbone``. Two-stage detectors need image
metadata in their tensor forward: export their backbone.

``--verify`` runs the ONNX file in onnxruntime and compares it with the
PyTorch model as loaded (the train form for a train-form checkpoint, in eval
mode), so it checks squeezing and export together.
"""
import argparse
import sys
import warnings
from typing import List, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.model import revert_sync_batchnorm
from mmengine.runner import load_state_dict
from torch import nn

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa import reparameterize
from mmorepa.engine import (CheckpointError, atomic_output, build_model, deploy_config,
                            is_same_file, read_checkpoint)

# Backbones that deploy_config() turns into a stock one; any other backbone
# (a deploy config's stock ResNet / RepVGG) is built as it is.
REPARAM_BACKBONES = ('OREPAResNet', 'OREPARepVGG')
# Opsets of torch's TorchScript-based exporter (the one that works offline:
# the dynamo exporter needs onnxscript). 9 is the first with constant folding.
MIN_OPSET, MAX_OPSET = 9, 20
DEFAULT_OPSET = 17


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments; argparse errors name the argument at fault."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config, or the deploy_config.py of a '
                        'squeezed checkpoint')
    parser.add_argument('checkpoint', help='checkpoint, train form or squeezed')
    parser.add_argument('output', help='ONNX file to write')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export model.backbone instead of the whole model')
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224),
                        metavar=('H', 'W'), help='input height and width (default: 224 224)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset, {MIN_OPSET} to {MAX_OPSET} '
                        f'(default: {DEFAULT_OPSET})')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch on a random input; exit 1 '
                        'if they differ by more than --tolerance')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max abs error accepted by --verify, relative to max|output| '
                        '(default: 1e-4)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')
    args = parser.parse_args(argv)
    if min(args.shape) <= 0:
        parser.error(f'--shape must be two positive ints H W, got {args.shape[0]} '
                     f'{args.shape[1]}')
    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        parser.error(f'--opset must lie in [{MIN_OPSET}, {MAX_OPSET}], got {args.opset}')
    if args.tolerance <= 0:
        parser.error(f'--tolerance must be positive, got {args.tolerance}')
    for source in (args.checkpoint, args.config):
        if is_same_file(args.output, source):
            parser.error(f'output {args.output} is the input file {source}; refusing to '
                         'overwrite it')
    return args


def read_state_dict(path: str) -> dict:
    """The checkpoint's state dict, loaded weights-only; a clear error if unreadable."""
    try:
        checkpoint = read_checkpoint(path)
    except CheckpointError as error:
        raise SystemExit(f'error: {error}')
    return checkpoint.get('state_dict', checkpoint)


def load_model(cfg: Config, state_dict: dict) -> Tuple[nn.Module, str]:
    """Build the model ``state_dict`` fits and load it strictly.

    A train-form checkpoint fits the model of ``cfg``; a squeezed one fits the
    model of ``deploy_config(cfg)`` (the stock backbone), tried second.

    Args:
        cfg (Config): Training or deploy config.
        state_dict (dict): The checkpoint's weights.

    Returns:
        tuple[nn.Module, str]: The model in eval mode, and ``'train form'``
        or ``'squeezed'`` for what the checkpoint held.
    """
    cfg.model.backbone.pop('init_cfg', None)  # the checkpoint brings the weights
    model = build_model(cfg)
    form = 'train form' if cfg.model.backbone.type in REPARAM_BACKBONES else 'squeezed'
    if set(state_dict) != set(model.state_dict()) and form == 'train form':
        deploy_model = build_model(deploy_config(cfg))
        if set(state_dict) == set(deploy_model.state_dict()):
            model, form = deploy_model, 'squeezed'
    try:
        load_state_dict(model, state_dict, strict=True, logger='silent')
    except RuntimeError as error:
        raise SystemExit('error: the checkpoint fits neither the model of the config nor, '
                         'for a re-param backbone, its squeezed form (wrong architecture?):'
                         f'\n{error}')
    # SyncBN (segmentation configs) cannot run outside a process group.
    return revert_sync_batchnorm(model).eval(), form


class TensorForward(nn.Module):
    """The tensor forward of an OpenMMLab model, outputs flattened for ONNX.

    Args:
        model (nn.Module): A classifier, segmentor or detector (``mode='tensor'``
            is called) or a backbone (``backbone=True``, called directly).
        backbone (bool): ``model`` is a backbone. Default: False.
    """

    def __init__(self, model: nn.Module, backbone: bool = False) -> None:
        super().__init__()
        self.model = model
        self.backbone = backbone

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outputs = self.model(inputs) if self.backbone else self.model(inputs, mode='tensor')
        return tuple(flatten_tensors(outputs))


def flatten_tensors(outputs) -> List[torch.Tensor]:
    """The tensors of a nested tuple / list / dict output, in order."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (tuple, list)):
        return [tensor for item in outputs for tensor in flatten_tensors(item)]
    raise TypeError(f'cannot export an output of type {type(outputs).__name__}')


def export_target(model: nn.Module, backbone_only: bool) -> TensorForward:
    """What to export: the whole model's tensor forward, or its backbone."""
    if backbone_only:
        return TensorForward(model.backbone, backbone=True).eval()
    if getattr(model, 'with_rpn', False) or hasattr(model, 'roi_head'):
        raise SystemExit(f'error: the tensor forward of {type(model).__name__} (two-stage '
                         'detector) needs image metadata; export it with --backbone-only')
    return TensorForward(model).eval()


def output_names(count: int) -> List[str]:
    """``['output']`` for one output, else ``output0``, ``output1``, ..."""
    return ['output'] if count == 1 else [f'output{i}' for i in range(count)]


def export_atomic(target: nn.Module, inputs: torch.Tensor, path: str, opset: int) -> int:
    """Export to a temporary file beside ``path``, then rename it into place.

    A reader never sees a half-written ONNX file, and a failed export leaves
    any previous file at ``path`` as it was.

    Returns:
        int: The number of outputs.
    """
    with torch.no_grad():
        count = len(target(inputs))
    try:
        with atomic_output(path) as temporary, warnings.catch_warnings():
            # The TorchScript-based exporter is chosen on purpose (the dynamo
            # one needs onnxscript); its deprecation notices are no news here.
            warnings.simplefilter('ignore', DeprecationWarning)
            torch.onnx.export(target, (inputs, ), temporary, dynamo=False,
                              opset_version=opset, input_names=['input'],
                              output_names=output_names(count), do_constant_folding=True)
    except torch.onnx.OnnxExporterError as error:
        # The exporter's message ends in a long TorchScript graph dump.
        reason = str(error).split('\n')[0].split(' [Caused by')[0]
        raise SystemExit(f'error: ONNX export failed: {reason}\n(operators whose output '
                         'depends on the input size, such as the pyramid pooling of '
                         'PSPNet, may need another --shape)')
    return count


def onnxruntime_outputs(path: str, inputs: torch.Tensor) -> List[np.ndarray]:
    """Run the ONNX file on ``inputs`` with onnxruntime's CPU provider."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': inputs.numpy()})


def relative_error(reference: Sequence[torch.Tensor],
                   actual: Sequence[np.ndarray]) -> Tuple[float, float]:
    """Max abs error over all outputs, and max|reference| (the output scale)."""
    if len(reference) != len(actual):
        raise ValueError(f'{len(actual)} ONNX outputs for {len(reference)} PyTorch outputs')
    error = max(np.abs(r.numpy() - a).max() for r, a in zip(reference, actual))
    scale = max(r.abs().max().item() for r in reference)
    return float(error), scale


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model, form = load_model(cfg, read_state_dict(args.checkpoint))
    squeezed = reparameterize(model)
    in_channels = cfg.model.backbone.get('in_channels', 3)
    inputs = torch.randn(1, in_channels, *args.shape)
    count = export_atomic(export_target(squeezed, args.backbone_only), inputs, args.output,
                          args.opset)
    part = 'backbone' if args.backbone_only else 'model'
    print(f'exported the squeezed {part} ({form} checkpoint {args.checkpoint}) to '
          f'{args.output}: input 1x{in_channels}x{args.shape[0]}x{args.shape[1]}, '
          f'{count} output(s), opset {args.opset}')
    if not args.verify:
        return 0
    with torch.no_grad():
        reference = export_target(model, args.backbone_only)(inputs)
    error, scale = relative_error(reference, onnxruntime_outputs(args.output, inputs))
    relative = error / max(scale, 1e-12)
    print(f'verification: onnxruntime vs PyTorch ({form}, eval) on a random input: max abs '
          f'error {error:.3e} = {relative:.2e} x max|output| {scale:.3e} '
          f'(tolerance {args.tolerance:.0e})')
    if relative > args.tolerance:
        print('error: verification failed', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
