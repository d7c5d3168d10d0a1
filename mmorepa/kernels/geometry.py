"""Placing kernels: a small one inside a larger one, identities in grouped 1x1 kernels."""
import torch
import torch.nn.functional as F
from torch import Tensor


def pad_to_kernel_size(kernel: Tensor, size: int) -> Tensor:
    """Zero-pad a kernel around its centre to ``size x size``.

    A 1x1 kernel sits at the centre of a 3x3 one: convolving with the padded
    kernel (and the larger kernel's padding) gives the same output.

    Args:
        kernel (Tensor): Kernel ``(O, I/g, k, k)`` with odd ``k``.
        size (int): Target size, odd and ``>= k``.

    Returns:
        Tensor: Kernel ``(O, I/g, size, size)``.
    """
    k = kernel.shape[-1]
    if kernel.shape[-2] != k or k % 2 == 0 or size % 2 == 0 or size < k:
        raise ValueError(f'cannot centre a {tuple(kernel.shape[-2:])} kernel '
                         f'in {size}x{size}: both sizes must be odd and square, '
                         'the target not smaller')
    pad = (size - k) // 2
    return F.pad(kernel, (pad, pad, pad, pad)) if pad else kernel


def grouped_identity(rows: int, in_per_group: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The 1x1 kernel ``(rows, I/g, 1, 1)`` with ``K[t, t mod (I/g)] = 1``, else 0.

    Within each group it maps input channel ``i`` to output rows ``i``,
    ``i + I/g``, ...: the identity when ``rows`` equals the input channels,
    and copies of it for a wider middle layer. The identity start of the
    1x1-kxk branches of OREPA and DBB.

    Args:
        rows (int): Output channels of the 1x1 kernel.
        in_per_group (int): Input channels per group.
        dtype (torch.dtype): Default: float32.
    """
    identity = torch.zeros(rows, in_per_group, 1, 1, dtype=dtype)
    index = torch.arange(rows)
    identity[index, index % in_per_group] = 1.0
    return identity
