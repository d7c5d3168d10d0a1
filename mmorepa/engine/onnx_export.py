"""Exporting a trained model, squeezed, to ONNX and checking it in onnxruntime."""
import warnings
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from ..layers import reparameterize
from .checkpoint_io import atomic_output
from .deploy import needs_image_metadata, relative_difference
from .errors import ReparamError

# Opsets of torch's TorchScript-based exporter (the one that works offline:
# the dynamo exporter needs onnxscript). 9 is the first with constant folding.
MIN_OPSET, MAX_OPSET = 9, 20
DEFAULT_OPSET = 17


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
    """What to export: the whole model's tensor forward, or its backbone.

    Raises:
        ReparamError: A two-stage detector without ``backbone_only``.
    """
    if backbone_only:
        return TensorForward(model.backbone, backbone=True).eval()
    if needs_image_metadata(model):
        raise ReparamError(f'the tensor forward of {type(model).__name__} (two-stage '
                           'detector) needs image metadata; export it with --backbone-only')
    return TensorForward(model).eval()


def export_onnx(model: nn.Module, inputs: torch.Tensor, path: str, opset: int = DEFAULT_OPSET,
                backbone_only: bool = False, dynamic_batch: bool = False,
                dynamic_size: bool = False) -> int:
    """Squeeze ``model`` (a copy) and export it to ``path``, atomically.

    A reader never sees a half-written file, and a failed export leaves any
    previous file at ``path`` as it was. ``dynamic_batch`` leaves the batch
    size of the input and outputs open, ``dynamic_size`` the input's height
    and width (else they are those of ``inputs``).

    Returns:
        int: The number of outputs.

    Raises:
        ReparamError: ``opset`` is out of range, or the exporter fails.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ReparamError(f'opset must lie in [{MIN_OPSET}, {MAX_OPSET}], got {opset}')
    target = export_target(reparameterize(model.eval()), backbone_only)
    with torch.no_grad():
        count = len(target(inputs))
    names = ['output'] if count == 1 else [f'output{i}' for i in range(count)]
    dynamic_axes = {name: {0: 'batch'} for name in ['input', *names]} if dynamic_batch else {}
    if dynamic_size:
        dynamic_axes.setdefault('input', {}).update({2: 'height', 3: 'width'})
    try:
        with atomic_output(path) as temporary, warnings.catch_warnings():
            # The TorchScript-based exporter is chosen on purpose (the dynamo
            # one needs onnxscript); its deprecation notices are no news here.
            warnings.simplefilter('ignore', DeprecationWarning)
            torch.onnx.export(target, (inputs, ), temporary, dynamo=False, opset_version=opset,
                              input_names=['input'], output_names=names,
                              dynamic_axes=dynamic_axes or None, do_constant_folding=True)
    except torch.onnx.OnnxExporterError as error:
        # The exporter's message ends in a long TorchScript graph dump.
        reason = str(error).split('\n')[0].split(' [Caused by')[0]
        raise ReparamError(f'ONNX export failed: {reason} (operators whose output depends on '
                           'the input size, such as the pyramid pooling of PSPNet, may need '
                           'another input shape)') from error
    return count


def onnxruntime_session(path: str):
    """An onnxruntime CPU session of the ONNX file, with torch's thread count."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def onnxruntime_outputs(path: str, inputs: torch.Tensor) -> List[np.ndarray]:
    """Run the ONNX file on ``inputs`` with onnxruntime's CPU provider."""
    return onnxruntime_session(path).run(None, {'input': inputs.numpy()})


def onnx_difference(model: nn.Module, path: str, inputs: torch.Tensor,
                    backbone_only: bool = False) -> float:
    """Relative difference of onnxruntime's outputs from ``model``'s (as loaded,
    in eval mode) on ``inputs``: checks squeezing and export together."""
    actual = [torch.from_numpy(np.asarray(a)) for a in onnxruntime_outputs(path, inputs)]
    with torch.no_grad():
        reference = export_target(model.eval(), backbone_only)(inputs)
    return relative_difference(list(reference), actual)
