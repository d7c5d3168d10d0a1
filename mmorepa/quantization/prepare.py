"""Switching a model's re-param layers to training on their INT8 deploy grid."""
from typing import Dict, List

import torch
from torch import Tensor, nn

from ..layers import ReparamConv2d, conv_norm_pairs
from .fake_quant import KernelQuantizer

#: Where a deploy checkpoint's ``meta['mmorepa']`` keeps :func:`int8_weight_scales`.
INT8_SCALES_KEY = 'int8_weight_scales'


def quantize_kernels(model: nn.Module, enabled: bool = True) -> List[str]:
    """Make every re-param layer of ``model`` convolve with its INT8 deploy kernel.

    Each layer gets a :class:`KernelQuantizer` with the BatchNorm registered
    directly after it (the pairs of :func:`mmorepa.layers.conv_norm_pairs`,
    as ResNet blocks, stems and mmcv's ``ConvModule`` register them), so it
    fake-quantizes the kernel the deployed conv will hold, norm folded in.
    The float32 path is untouched when ``enabled`` is False. In place.

    Args:
        model (nn.Module): Any model holding re-param layers.
        enabled (bool): Switch on (default) or off.

    Returns:
        list[str]: Names of the layers switched.

    Raises:
        ValueError: A layer has no kernel during training (a DBB runs its
            branches on the feature maps), or the model has no re-param layer.
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, ReparamConv2d)]
    if not layers:
        raise ValueError(f'{type(model).__name__} has no re-param layer to quantize')
    unsupported = [f'{name} ({type(m).__name__})' for name, m in layers
                   if not m.convolves_generated_kernel]
    if enabled and unsupported:
        raise ValueError(
            f'quantization-aware training needs layers that convolve with their generated '
            f'kernel; {", ".join(unsupported[:3])} run their branches on the feature maps, '
            'so their deploy kernel does not exist during training (use tools/quantize.py '
            'after training instead)')
    following = {id(conv): norm for (_, conv), (_, norm) in conv_norm_pairs(model)
                 if isinstance(norm, nn.modules.batchnorm._BatchNorm)}
    for _, layer in layers:
        layer.kernel_quantizer = KernelQuantizer(following.get(id(layer))) if enabled else None
    return [name for name, _ in layers]


@torch.no_grad()
def int8_weight_scales(model: nn.Module) -> Dict[str, Tensor]:
    """Per-output-channel INT8 scales of the deployed convs of the layers that
    train on their deploy grid, by module name (empty when none does).

    The squeezed model keeps these names, so the scales find their convs.
    """
    scales = {}
    for name, layer in model.named_modules():
        if isinstance(layer, ReparamConv2d) and layer.kernel_quantizer is not None:
            with torch.autocast(layer._device_type(), enabled=False):
                kernel, _ = layer.squeezed_kernel()
            scales[name] = layer.kernel_quantizer.folded(kernel)[1].cpu()
    return scales
