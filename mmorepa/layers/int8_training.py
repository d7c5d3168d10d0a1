"""Switching a model's re-param layers to training on their INT8 deploy grid."""
import dataclasses
from typing import List, Optional, Union

import torch
from torch import nn

from .base import ReparamConv2d
from .generated_kernel import GeneratedKernelConv2d
from .int8_grid import WEIGHT_RANGES, KernelQuantizer
from .squeeze import conv_norm_pairs


def weight_range_setting(value: Union[bool, str, None]) -> Optional[str]:
    """The weight range a backbone's ``quantize_kernels`` argument asks for:
    ``False`` / ``None`` none, ``True`` ``'full'``, or ``'full'`` / ``'reduced'``.

    Raises:
        ValueError: Any other value.
    """
    if value is None or value is False:
        return None
    if value is True:
        return 'full'
    if value not in WEIGHT_RANGES:
        raise ValueError(f'quantize_kernels must be one of (False, True, '
                         f'{", ".join(map(repr, WEIGHT_RANGES))}), got {value!r}')
    return value


def quantize_kernels(model: nn.Module, weight_range: Optional[str] = 'full') -> List[str]:
    """Make every re-param layer of ``model`` convolve with its INT8 deploy kernel.

    Each layer's :class:`ForwardPolicy` gets a :class:`KernelQuantizer` with
    the BatchNorm registered directly after it (the pairs of :func:`mmorepa.layers.conv_norm_pairs`,
    as ResNet blocks, stems and mmcv's ``ConvModule`` register them), so it
    fake-quantizes the kernel the deployed conv will hold, norm folded in.
    The grid exists for the whole kernel only, so every branch then folds
    into it in training, whatever the placement. In place.

    Args:
        model (nn.Module): Any model holding re-param layers.
        weight_range (str, optional): ``'full'`` (default) or ``'reduced'``
            (:data:`WEIGHT_RANGES`); ``None`` switches back to the float32
            path, unchanged.

    Returns:
        list[str]: Names of the layers switched.

    Raises:
        ValueError: A layer has no kernel during training (a DBB runs its
            branches on the feature maps), the model has no re-param layer,
            a layer's placement is ``'feature'`` (no folded kernel), or
            ``weight_range`` is unknown.
    """
    if weight_range is not None and weight_range not in WEIGHT_RANGES:
        raise ValueError(f'weight_range must be one of {tuple(WEIGHT_RANGES)} or None, '
                         f'got {weight_range!r}')
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, ReparamConv2d)]
    if not layers:
        raise ValueError(f'{type(model).__name__} has no re-param layer to quantize')
    unsupported = [f'{name} ({type(m).__name__})' for name, m in layers
                   if not isinstance(m, GeneratedKernelConv2d)]
    if weight_range is not None and unsupported:
        raise ValueError(
            f'quantization-aware training needs layers that convolve with their generated '
            f'kernel; {", ".join(unsupported[:3])} run their branches on the feature maps, '
            'so their deploy kernel does not exist during training (use tools/quantize.py '
            'after training instead)')
    on_features = [name for name, m in layers if isinstance(m, GeneratedKernelConv2d)
                   and m.forward_policy.placement == 'feature']
    if weight_range is not None and on_features:
        raise ValueError(f"layers {on_features[:3]} have placement='feature', so no folded "
                         "kernel to put on the INT8 grid: use placement 'auto' or 'kernel'")
    following = {id(conv): norm for (_, conv), (_, norm) in conv_norm_pairs(model)
                 if isinstance(norm, nn.modules.batchnorm._BatchNorm)}
    for _, layer in layers:
        if isinstance(layer, GeneratedKernelConv2d):
            quantizer = None if weight_range is None else KernelQuantizer(
                following.get(id(layer)), weight_range)
            layer.forward_policy = dataclasses.replace(layer.forward_policy,
                                                       kernel_quantizer=quantizer)
    return [name for name, _ in layers]


@torch.no_grad()
def int8_weight_grid(model: nn.Module) -> Optional[dict]:
    """The INT8 grid the deployed convs of the layers on it hold: ``range``
    (``'full'`` / ``'reduced'``) and ``scales`` (per output channel, by module
    name; the squeezed model keeps the names). ``None`` when no layer is on a
    grid.

    Raises:
        ValueError: A layer folds a norm that is no longer in the model, or
            the layers are on grids of different ranges.
    """
    scales, ranges = {}, set()
    modules = {id(module) for module in model.modules()}
    for name, layer in model.named_modules():
        if isinstance(layer, GeneratedKernelConv2d) and layer.kernel_quantizer is not None:
            norm = layer.kernel_quantizer.norm
            if norm is not None and id(norm) not in modules:
                raise ValueError(f'the norm layer {name!r} folds is no longer in the model '
                                 '(replaced after quantize_kernels, e.g. by a SyncBN '
                                 'conversion): call quantize_kernels again')
            with torch.autocast(layer._device_type(), enabled=False):
                kernel, _ = layer.squeezed_kernel()
            scales[name] = layer.kernel_quantizer.folded(kernel)[1].cpu()
            ranges.add(layer.kernel_quantizer.weight_range)
    if not scales:
        return None
    if len(ranges) > 1:
        raise ValueError(f'the layers are on INT8 grids of different ranges {sorted(ranges)}; '
                         'one model deploys with one')
    return dict(range=ranges.pop(), scales=scales)
