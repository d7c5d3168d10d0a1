"""The frequency prior of OREPA's prior branch (a DCT-like basis)."""
import math
from typing import Optional

import torch
from torch import Tensor


def frequency_prior(out_channels: int,
                    kernel_size: int,
                    dtype: torch.dtype = torch.float32,
                    device: Optional[torch.device] = None) -> Tensor:
    """Fixed per-output-channel filters ``F`` of shape ``(O, k, k)``.

    The first half of the channels (``o < O/2``) varies along the rows,
    ``cos(pi * (h + 0.5) * (o + 1) / k)``; the second half along the columns,
    ``cos(pi * (w + 0.5) * (o + 1 - O/2) / k)``. ``O/2`` is a true division, as
    in the published model, so an odd ``O`` is allowed.

    Args:
        out_channels (int): ``O``.
        kernel_size (int): ``k``, any positive size.
        dtype (torch.dtype): Dtype of the result. Default: float32.
        device (torch.device, optional): Device of the result. Default: CPU.

    Returns:
        Tensor: The basis, computed in float64 and rounded once to ``dtype``.
    """
    half = out_channels / 2
    channel = torch.arange(out_channels, dtype=torch.float64)
    position = torch.arange(kernel_size, dtype=torch.float64) + 0.5
    first_half = channel < half
    frequency = torch.where(first_half, channel + 1, channel + 1 - half)
    wave = torch.cos(math.pi * frequency[:, None] * position[None, :] / kernel_size)
    rows = wave[:, :, None].expand(-1, -1, kernel_size)
    cols = wave[:, None, :].expand(-1, kernel_size, -1)
    basis = torch.where(first_half[:, None, None], rows, cols)
    return basis.to(dtype=dtype, device=device).contiguous()
