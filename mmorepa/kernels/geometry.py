"""Placing a small kernel inside a larger one."""
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
