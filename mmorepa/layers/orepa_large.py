"""OREPALargeConv2d: the linear deep stem, a large kernel from stacked 3x3 OREPA
kernels (paper, sec. 3; docs/method.md)."""
from typing import Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.registry import MODELS
from torch import nn

from ..kernels import compose_kxk_kxk, solve_second_kernel
from .generated_kernel import GeneratedKernelConv2d
from .orepa_conv import OREPA_BRANCHES, OREPA_KAIMING_A, build_branch_sum

GENERATOR_KERNEL_SIZE = 3
# A stock kernel is solved into the last generator only while the map from
# that generator to the composed kernel is this well conditioned: float32
# rounding of the composition grows with the condition number.
MAX_CONDITION = 1e4


@MODELS.register_module()
class OREPALargeConv2d(GeneratedKernelConv2d):
    """A ``k x k`` conv (odd ``k >= 5``) whose kernel is ``(k - 1) / 2`` OREPA 3x3
    kernels composed in sequence (in -> out, then out -> out, ...).

    The kernels are composed by true convolution, so the squeezed kernel equals
    running the 3x3 kernels one after another (away from zero-padded borders).
    The published code composes by cross-correlation instead;
    ``tools/convert_published.py`` flips the kernels it converts accordingly.
    Registered as ``'OREPALargeConv2d'``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels, also the middle width.
        kernel_size (int): Odd, at least 5.
        stride, padding, dilation, groups, bias, padding_mode: As ``nn.Conv2d``.
        branches (Sequence[str]): Branches of every 3x3 generator (all six by default).
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        placement (str): As :class:`OREPAConv2d`, for the same config; the
            generators always fold (their composition on the feature map
            would run every 3x3 at the input's full resolution).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = False,
                 padding_mode: str = 'zeros',
                 branches: Sequence[str] = tuple(OREPA_BRANCHES),
                 scaling: Optional[str] = 'vector',
                 placement: str = 'auto') -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, placement=placement)
        size = self.kernel_size[0]
        if size < 5 or size % 2 == 0:
            raise ValueError(f'kernel_size must be odd and >= 5 for OREPALargeConv2d, '
                             f'got {kernel_size!r}')
        widths = [in_channels] + [out_channels] * ((size - 1) // 2)
        self.generators = nn.ModuleList(
            build_branch_sum(branches, c_in, c_out, GENERATOR_KERNEL_SIZE, groups, scaling,
                             OREPA_KAIMING_A) for c_in, c_out in zip(widths[:-1], widths[1:]))

    def squeezed_kernel(self):
        kernel = self.generators[0].kernel()
        for generator in self.generators[1:]:
            kernel = compose_kxk_kxk(kernel, generator.kernel(), self.groups)
        return kernel, self.bias

    @torch.no_grad()
    def set_squeezed_kernel(self, kernel, bias=None) -> None:
        """See :meth:`ReparamConv2d.set_squeezed_kernel`.

        The composed kernel is linear in the last generator's kernel. With
        the other generators at their (random) values, the smallest last
        kernel that composes to ``kernel`` is solved by least squares (for a
        7x7 stem from 3 channels, 576 unknowns for 147 equations per output
        channel: an exact solution exists); the last generator's branches then
        take it (:meth:`BranchSum.set_kernel`). The smallest kernel rather than
        the smallest change: the random start's part that composes to zero
        would only add float32 rounding (4x more, measured on a stock
        ResNet-18 stem). Conditioning and residual are logged; a solve that is
        not exact, or too ill-conditioned for float32, raises an error. The
        solve runs in float64 on the CPU whatever the layer's device
        (:func:`~mmorepa.kernels.solver_tensor`).
        """
        self._check_squeezed(kernel, bias)
        # The leading generators as the forward pass computes them, so that
        # their rounding is part of what is solved against.
        first = self.generators[0].kernel()
        for generator in self.generators[1:-1]:
            first = compose_kxk_kxk(first, generator.kernel(), self.groups)
        last = self.generators[-1]
        size = GENERATOR_KERNEL_SIZE
        # The solve runs in float64 on the CPU (solver_tensor); the branches copy it back.
        smallest = torch.zeros(self.out_channels, self.out_channels // self.groups, size, size,
                               dtype=torch.float64)
        wanted, residual, condition = solve_second_kernel(first, smallest, kernel, self.groups)
        message = (f'{type(self).__name__} {self.kernel_size[0]}x{self.kernel_size[0]}: '
                   f'stock kernel solved into the last generator, relative residual '
                   f'{residual:.1e}, condition number {condition:.1f}')
        if residual > 1e-10 or condition > MAX_CONDITION:
            raise ValueError(message + f'; needs residual <= 1e-10 and condition <= '
                             f'{MAX_CONDITION:.0e} to hold the kernel exactly')
        print_log(message, logger='current')
        last.set_kernel(wanted)
        self._set_bias(bias)
