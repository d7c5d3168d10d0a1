"""The INT8 grid of a deployed conv, seen from the re-param layer that trains it.

A re-param layer followed by a BatchNorm deploys as one conv holding the
generated kernel with the norm folded in, ``K * f`` per output channel with
``f = gamma / sqrt(running_var + eps)``. INT8 deployment stores that folded
kernel per output channel, symmetric: ``q = round(K f / s)`` in [-127, 127]
with ``s = max |K f| / 127`` (or the reduced range of x86 CPUs without
VNNI, [-64, 64]: :data:`WEIGHT_RANGES`). :class:`KernelQuantizer` lets training convolve
with exactly that grid (the folding of quantization-aware training of conv
and norm pairs: fake-quantize the folded kernel, divide the fold back out and
let the norm run as usual), with a straight-through gradient from torch's
``fake_quantize_per_channel_affine``. docs/int8.md gives the measurements.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..utils import check_choice

#: Largest weight level of each symmetric INT8 weight grid (zero point 0).
#: ``'full'``: INT8 as runtimes store weights (no -128). ``'reduced'``:
#: onnxruntime's ``reduce_range``, for x86 CPUs without VNNI, whose u8 x s8
#: kernels add pairs of products in saturating int16 (255 * 127 * 2 > 32767).
WEIGHT_RANGES = {'full': 127, 'reduced': 64}
INT8_MAX = WEIGHT_RANGES['full']
# The smallest scale used: an all-zero channel quantizes to zeros with it.
_TINY_SCALE = torch.finfo(torch.float32).tiny


def channel_scales(kernel: Tensor, levels: int = INT8_MAX) -> Tensor:
    """Per-output-channel symmetric scales of ``kernel`` for the grid
    ``[-levels, levels]`` (float32, no grad)."""
    peak = kernel.detach().float().abs().flatten(1).amax(dim=1)
    return (peak / levels).clamp_min(_TINY_SCALE)


def fake_quantize(kernel: Tensor, scales: Tensor, levels: int = INT8_MAX) -> Tensor:
    """``kernel`` rounded to the grid ``[-levels, levels] * scales`` (per output
    channel), in float32; the gradient passes straight through inside the grid."""
    zero_points = torch.zeros(scales.shape, dtype=torch.int32, device=scales.device)
    return torch.fake_quantize_per_channel_affine(kernel.float(), scales, zero_points, 0,
                                                  -levels, levels)


class KernelQuantizer:
    """The INT8 deploy grid of one re-param layer and the norm that follows it.

    Not a module: it holds a reference to the norm (a module of the same
    model, copied with it by ``copy.deepcopy``) and no state of its own.

    Args:
        norm (nn.Module, optional): The BatchNorm directly after the layer,
            folded into the deployed kernel; ``None`` when none follows.
        weight_range (str): ``'full'`` or ``'reduced'`` (:data:`WEIGHT_RANGES`).
    """

    def __init__(self, norm: Optional[nn.Module] = None, weight_range: str = 'full') -> None:
        if norm is not None and not isinstance(norm, nn.modules.batchnorm._BatchNorm):
            raise TypeError(f'norm must be a BatchNorm or None, got {type(norm).__name__}')
        self.norm = norm
        self.weight_range = check_choice('weight_range', weight_range, tuple(WEIGHT_RANGES))
        self.levels = WEIGHT_RANGES[weight_range]

    def _fold(self, kernel: Tensor) -> Tuple[Tensor, Tensor]:
        """The fold factor ``f`` and the one used to scale the kernel, ``g``:
        ``f`` where it is non-zero, else 1 (a zero-gamma channel deploys as
        zeros; training keeps its kernel on the grid of ``K`` so it can
        still learn)."""
        ones = torch.ones(kernel.shape[0], device=kernel.device)
        if self.norm is None:
            return ones, ones
        norm = self.norm
        gamma = norm.weight if norm.affine else ones
        fold = gamma.float() / torch.sqrt(norm.running_var.float() + norm.eps)
        return fold, torch.where(fold == 0, ones, fold)

    def _on_grid(self, kernel: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        fold, used = self._fold(kernel)
        scaled = kernel.float() * used.view(-1, 1, 1, 1)
        scales = channel_scales(scaled, self.levels)
        return fake_quantize(scaled, scales, self.levels), fold, used, scales

    def folded(self, kernel: Tensor) -> Tuple[Tensor, Tensor]:
        """The deployed conv's dequantized INT8 kernel and its scales.

        Args:
            kernel (Tensor): The layer's generated kernel ``(O, I/g, k, k)``.

        Returns:
            tuple[Tensor, Tensor]: ``fake_quantize(K f, s)`` (bit for bit:
            ``f / g`` is exactly 1 where ``f`` is non-zero; zeros elsewhere)
            and the float32 scales ``s`` ``(O,)``.
        """
        quantized, fold, used, scales = self._on_grid(kernel)
        return quantized * (fold / used).view(-1, 1, 1, 1), scales

    def __call__(self, kernel: Tensor) -> Tensor:
        """The kernel to convolve with before the norm: the deployed INT8
        kernel with the fold divided out, in float32 (float64 for a float64
        layer; under AMP the conv casts it as it casts any weight)."""
        quantized, _, used, _ = self._on_grid(kernel)
        dtype = torch.promote_types(kernel.dtype, torch.float32)
        return (quantized / used.view(-1, 1, 1, 1)).to(dtype)
