"""OREPALargeConv2d: the linear deep stem, a large kernel from stacked 3x3 OREPA
kernels (method spec, sec. 3.3)."""
from typing import Optional, Sequence

from mmengine.registry import MODELS
from torch import nn

from ..kernels import compose_kxk_kxk
from .base import ReparamConv2d
from .orepa_conv import OREPA_BRANCHES, OREPA_KAIMING_A, build_branch_sum

GENERATOR_KERNEL_SIZE = 3


@MODELS.register_module()
class OREPALargeConv2d(ReparamConv2d):
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
                 scaling: Optional[str] = 'vector') -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
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
