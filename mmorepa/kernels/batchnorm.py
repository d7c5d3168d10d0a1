"""BatchNorm (eval statistics) as an affine map on a conv's output."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn


def bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> Tuple[Tensor, Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(y) == y * scale + shift`` in eval mode.

    Args:
        bn (_BatchNorm): A norm with running statistics (``affine`` optional).

    Returns:
        tuple[Tensor, Tensor]: ``scale = gamma / sqrt(var + eps)`` and
        ``shift = beta - mean * scale``, both of shape ``(C,)``.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError('bn must track running statistics '
                         '(track_running_stats=True) to be fused')
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def fuse_conv_bn(kernel: Tensor, bias: Optional[Tensor],
                 bn: nn.modules.batchnorm._BatchNorm) -> Tuple[Tensor, Tensor]:
    """Fold an eval-mode BatchNorm into the conv before it.

    ``W' = W * gamma / sigma`` and ``b' = beta + (b - mean) * gamma / sigma``.

    Args:
        kernel (Tensor): Conv kernel ``(O, I/g, kh, kw)``.
        bias (Tensor, optional): Conv bias ``(O,)``; ``None`` means zero.
        bn (_BatchNorm): The norm applied to the conv's output.

    Returns:
        tuple[Tensor, Tensor]: The fused kernel and bias.
    """
    scale, shift = bn_scale_shift(bn)
    fused_kernel = kernel * scale.reshape(-1, 1, 1, 1)
    fused_bias = shift if bias is None else shift + bias * scale
    return fused_kernel, fused_bias


def fold_bias_into_bn_stats(bias: Tensor,
                            bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Remove a conv bias by shifting the running mean of the norm after it.

    ``bn(y + b)`` equals ``bn'(y)`` in eval mode when ``mean' = mean - b``, so a
    conv followed by a norm can drop its bias exactly. Works in place.

    Args:
        bias (Tensor): The bias ``(C,)`` being removed from the conv.
        bn (_BatchNorm): The norm that follows the conv.
    """
    if bn.running_mean is None:
        raise ValueError('bn must track running statistics to absorb a bias')
    with torch.no_grad():
        bn.running_mean.sub_(bias.to(bn.running_mean))
