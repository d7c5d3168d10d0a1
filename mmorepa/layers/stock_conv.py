"""Convolving the way a stock conv does: its padding subclass or padding mode.

A re-param layer normally convolves with ``F.conv2d`` and zero padding. A
stock conv may pad otherwise: mmcv's ``Conv2dAdaptivePadding`` (TensorFlow's
"same" padding, mmpretrain's EfficientNet), timm's ``Conv2dSame``, or
``padding_mode='reflect'``. Such a conv is kept as a weightless template (on
the meta device, outside the module tree, so it adds no state-dict keys) whose
own ``forward`` the layer calls with its generated kernel: the layer computes
exactly what that conv would compute with that kernel, and squeezes back into
a conv of the same class.
"""
import copy
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The tensors a template's forward may read: the layer provides exactly these.
TEMPLATE_TENSORS = ('weight', 'bias')


def is_plain_conv(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` convolves as ``F.conv2d`` with its own zero padding."""
    return type(conv) is nn.Conv2d and conv.padding_mode == 'zeros'


def template_refusal(conv: nn.Conv2d) -> Optional[str]:
    """Why ``conv``'s forward cannot be reproduced from a kernel alone, or None.

    A conv class qualifies when its only state is ``weight`` and ``bias``: its
    forward then computes from the kernel and its geometry. Classes with other
    parameters, buffers or submodules (weight standardization with learned
    gains, deformable offsets, ...) do not.
    """
    names = [name for name, _ in conv.named_parameters(recurse=False)]
    extra = [name for name in names if name not in TEMPLATE_TENSORS]
    extra += [name for name, _ in conv.named_buffers()] + [n for n, _ in conv.named_children()]
    if extra:
        return (f'{type(conv).__name__} holds state besides weight and bias '
                f'({", ".join(extra)})')
    return None


def make_template(conv: nn.Conv2d) -> nn.Conv2d:
    """A weightless copy of ``conv`` (meta device) to convolve like it.

    Raises:
        ValueError: ``conv`` holds more state than a kernel (see
            :func:`template_refusal`).
    """
    refusal = template_refusal(conv)
    if refusal is not None:
        raise ValueError(f'cannot convolve like this conv: {refusal}')
    return copy.deepcopy(conv).to('meta').requires_grad_(False)


def convolve_like(template: nn.Conv2d, x: Tensor, kernel: Tensor,
                  bias: Optional[Tensor]) -> Tensor:
    """``template``'s forward on ``x`` with ``kernel`` (and ``bias``) as its tensors."""
    tensors = {'weight': kernel}
    if template.bias is not None:
        tensors['bias'] = bias
    return torch.func.functional_call(template, tensors, (x, ))


def materialize(template: nn.Conv2d, kernel: Tensor, bias: Optional[Tensor]) -> nn.Conv2d:
    """A real conv of ``template``'s class holding ``kernel`` and ``bias``."""
    conv = copy.deepcopy(template).to_empty(device=kernel.device).to(kernel.dtype)
    with torch.no_grad():
        conv.weight.copy_(kernel)
        if conv.bias is not None:
            conv.bias.copy_(bias)
    return conv.requires_grad_(True)


def unfolded_conv(x: Tensor, kernel: Tensor, stride: Tuple[int, int], padding: Tuple[int, int],
                  dilation: Tuple[int, int]) -> Tensor:
    """``F.conv2d(x, kernel, None, stride, padding, dilation)`` (zero padding, one
    group) as one matrix product over the unfolded input columns.

    The same sums in another order; on small feature maps it is several times
    faster than the library's conv kernels on CPUs (docs/benchmarks.md,
    "Branch placement").
    """
    height, width = x.shape[-2:]
    size = kernel.shape[-2:]
    geometry = zip((height, width), padding, dilation, size, stride)
    out_size = [(side + 2 * pad - dil * (k - 1) - 1) // step + 1
                for side, pad, dil, k, step in geometry]
    columns = F.unfold(x, size, dilation, padding, stride)
    out = torch.matmul(kernel.reshape(kernel.shape[0], -1), columns)
    return out.reshape(x.shape[0], kernel.shape[0], *out_size)
