"""DBBConv2d: the Diverse Branch Block, the offline re-param baseline of the
paper's Table 4, laid out as the published DBB (docs/method.md)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.registry import MODELS
from torch import Tensor, nn

from ..kernels import (avg_pool_kernel, compose_1x1_kxk, fuse_conv_bn, grouped_identity,
                       pad_to_kernel_size, solver_tensor)
from ..kernels.batchnorm import bn_scale_shift
from .base import ReparamConv2d
from .orepa_branches import unscale_rows


class BNAndPad(nn.Module):
    """A norm whose output border is padded with the norm's own value for zero.

    A 1x1 conv, this norm and then a padding-free ``k x k`` conv equal, at every
    position, one ``k x k`` conv with zero padding and a bias: the border holds
    exactly what the fused bias would put there.

    Args:
        channels (int): Channels of the norm.
        padding (int): Border width.
        norm_cfg (dict): Config of the norm (a BatchNorm type).
    """

    def __init__(self, channels: int, padding: int, norm_cfg: dict) -> None:
        super().__init__()
        self.bn = build_norm_layer(norm_cfg, channels)[1]
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(x)
        if self.padding == 0:
            return out
        # Running statistics: what the squeezed conv will use in eval mode.
        _, value = bn_scale_shift(self.bn)
        out = F.pad(out, [self.padding] * 4)
        border = torch.ones_like(out, dtype=torch.bool)
        border[..., self.padding:-self.padding, self.padding:-self.padding] = False
        return torch.where(border, value.detach().reshape(1, -1, 1, 1).to(out), out)


class IdentityBasedConv1x1(nn.Module):
    """A 1x1 conv whose kernel is a fixed grouped identity plus a learned delta.

    The delta starts at zero, so the conv starts as the identity. Not an
    ``nn.Conv2d``: a backbone's ``init_cfg`` (Kaiming on every ``Conv2d``)
    leaves the identity start in place, as the published DBB has it.

    Args:
        channels (int): Input and output channels.
        groups (int): Groups.
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.register_buffer('identity', grouped_identity(channels, channels // groups),
                             persistent=False)
        self.delta = nn.Parameter(torch.zeros_like(self.identity))

    def kernel(self) -> Tensor:
        return self.identity + self.delta

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel(), groups=self.groups)


class UniformPool2d(nn.Module):
    """Average pooling over a (dilated) ``k x k`` window, zero padding counted.

    ``nn.AvgPool2d`` has no dilation; a dilated window is a depthwise conv
    with a constant kernel. Either way its kernel is ``1 / k**2`` everywhere.

    Args:
        kernel_size (int): Window size.
        stride (int): Stride.
        padding (int): Zero padding.
        dilation (int): Dilation of the window.
    """

    def __init__(self, kernel_size: int, stride, padding: int, dilation: int) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.padding, self.dilation = padding, dilation

    def forward(self, x: Tensor) -> Tensor:
        if self.dilation == 1:
            return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)
        size = self.kernel_size
        weight = x.new_full((x.shape[1], 1, size, size), 1.0 / size**2)
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, x.shape[1])


@MODELS.register_module()
class DBBConv2d(ReparamConv2d):
    """Diverse Branch Block: four conv branches, each with its own norm, summed.

    ``k x k`` conv-BN; 1x1 conv-BN; 1x1 conv-BN-avgpool-BN; 1x1 conv-BN-``k x k``
    conv-BN. Every branch runs on the feature map during training (this is the
    cost OREPA removes); :meth:`squeeze` gives one conv with bias, exact at the
    borders too. The block replaces a conv *and* its norm, as in the published
    DBB-ResNet. Layout as published: when ``groups < out_channels`` the 1x1
    chain's middle width is ``in_channels`` and its 1x1 starts at the identity
    (:class:`IdentityBasedConv1x1`); otherwise (depthwise) it is ``2 *
    in_channels`` with a plain 1x1, there is no 1x1 branch and the avg branch
    pools the input directly. Registered as ``'DBBConv2d'``; the ``'DBB'``
    conv type builds it for the 3x3 (and 5x5) convs of a backbone.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Odd, at least 3.
        stride (int): Default: 1.
        padding (int): Must be ``dilation * (kernel_size // 2)``. Default: that.
        dilation (int): Default: 1. Dilated DBBs (mmseg's D8 ResNets) pool the
            avg branch over the same dilated window.
        groups (int): Default: 1. ``groups >= out_channels`` needs
            ``in_channels == out_channels`` (a depthwise DBB).
        bias (bool): Extra bias after the sum. Default: False.
        padding_mode (str): Only ``'zeros'``.
        norm_cfg (dict): Norm of every branch. Default: ``dict(type='BN')``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride=1,
                 padding: Optional[int] = None,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = False,
                 padding_mode: str = 'zeros',
                 norm_cfg: dict = dict(type='BN')) -> None:
        size = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
        rate = dilation if isinstance(dilation, int) else dilation[0]
        padding = rate * (size // 2) if padding is None else padding
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)
        if size < 3 or size % 2 == 0:
            raise ValueError(f'kernel_size must be odd and >= 3 for DBB, got {kernel_size!r}')
        if self.dilation[0] != self.dilation[1]:
            raise ValueError(f'dilation must be equal in both axes for DBB, got {dilation!r}')
        pad = rate * (size // 2)
        if self.padding != (pad, pad):
            raise ValueError(f'padding must be dilation * (kernel_size // 2) = {pad} for DBB, '
                             f'got {padding!r}')
        self.depthwise = groups >= out_channels
        if self.depthwise and in_channels != out_channels:
            raise ValueError(f'groups ({groups}) >= out_channels ({out_channels}) builds a '
                             f'depthwise DBB, which needs in_channels == out_channels, '
                             f'got {in_channels}')

        def norm(channels):
            return build_norm_layer(norm_cfg, channels)[1]

        self.kxk = nn.Conv2d(in_channels, out_channels, size, stride, pad, rate, groups,
                             bias=False)
        self.kxk_bn = norm(out_channels)
        if not self.depthwise:
            self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1, stride, groups=groups,
                                     bias=False)
            self.conv1x1_bn = norm(out_channels)
            self.avg_conv = nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
            self.avg_pad_bn = BNAndPad(out_channels, pad, norm_cfg)
        self.avg_pool = UniformPool2d(size, stride, pad if self.depthwise else 0, rate)
        self.avg_bn = norm(out_channels)
        if self.depthwise:
            middle = 2 * in_channels
            self.chain_conv1 = nn.Conv2d(in_channels, middle, 1, groups=groups, bias=False)
        else:
            middle = in_channels
            self.chain_conv1 = IdentityBasedConv1x1(in_channels, groups)
        self.chain_pad_bn = BNAndPad(middle, pad, norm_cfg)
        self.chain_conv2 = nn.Conv2d(middle, out_channels, size, stride, 0, rate, groups,
                                     bias=False)
        self.chain_bn = norm(out_channels)

    def convolve_like(self, conv: nn.Conv2d) -> 'DBBConv2d':
        """Refused: the branches run on the feature map, with zero padding."""
        raise ValueError(f'DBBConv2d runs its branches on the feature map with zero padding '
                         f'and cannot convolve like {type(conv).__name__}')

    def forward(self, x: Tensor) -> Tensor:
        out = self.kxk_bn(self.kxk(x))
        if self.depthwise:
            out = out + self.avg_bn(self.avg_pool(x))
        else:
            out = out + self.conv1x1_bn(self.conv1x1(x))
            out = out + self.avg_bn(self.avg_pool(self.avg_pad_bn(self.avg_conv(x))))
        out = out + self.chain_bn(self.chain_conv2(self.chain_pad_bn(self.chain_conv1(x))))
        if self.bias is not None:
            out = out + self.bias.reshape(1, -1, 1, 1)
        return out

    def _chain_kernel(self) -> Tuple[Tensor, Tensor]:
        first = self.chain_conv1
        first = first.weight if isinstance(first, nn.Conv2d) else first.kernel()
        first, first_bias = fuse_conv_bn(first, None, self.chain_pad_bn.bn)
        second, second_bias = fuse_conv_bn(self.chain_conv2.weight, None, self.chain_bn)
        kernel = compose_1x1_kxk(first, second, self.groups)
        # The padded border carries first_bias, so it reaches every output
        # through the whole k x k window of the second conv.
        groups = self.groups
        window_sum = second.sum(dim=(2, 3)).reshape(groups, -1, second.shape[1])
        bias = second_bias + torch.einsum('got,gt->go', window_sum,
                                          first_bias.reshape(groups, -1)).reshape(-1)
        return kernel, bias

    def _avg_kernel(self) -> Tuple[Tensor, Tensor]:
        size = self.kernel_size[0]
        if self.depthwise:
            ones = self.kxk.weight.new_ones(self.out_channels, 1, 1, 1)
            return fuse_conv_bn(avg_pool_kernel(ones, size), None, self.avg_bn)
        first, first_bias = fuse_conv_bn(self.avg_conv.weight, None, self.avg_pad_bn.bn)
        return fuse_conv_bn(avg_pool_kernel(first, size), first_bias, self.avg_bn)

    def squeezed_kernel(self):
        size = self.kernel_size[0]
        kernel, bias = fuse_conv_bn(self.kxk.weight, None, self.kxk_bn)
        parts = [self._avg_kernel(), self._chain_kernel()]
        if not self.depthwise:
            conv1x1, conv1x1_bias = fuse_conv_bn(self.conv1x1.weight, None, self.conv1x1_bn)
            parts.append((pad_to_kernel_size(conv1x1, size), conv1x1_bias))
        for part_kernel, part_bias in parts:
            kernel = kernel + part_kernel
            bias = bias + part_bias
        if self.bias is not None:
            bias = bias + self.bias
        return kernel, bias

    @torch.no_grad()
    def set_squeezed_kernel(self, kernel, bias=None) -> None:
        """See :meth:`ReparamConv2d.set_squeezed_kernel`.

        The ``k x k`` branch's conv takes the kernel's difference and its
        norm's shift the bias's, so the block equals ``(kernel, bias)`` with
        the norms' running statistics (eval mode; in training the branch
        norms use batch statistics). The kernel is solved in float64 on the
        CPU (:func:`~mmorepa.kernels.solver_tensor`).
        """
        self._check_squeezed(kernel, bias)
        if self.kxk_bn.weight is None:
            raise ValueError("the k x k branch's norm must be affine to hold a stock kernel")
        current_kernel, current_bias = self.squeezed_kernel()
        scale, _ = bn_scale_shift(self.kxk_bn)
        change = unscale_rows(solver_tensor(kernel) - solver_tensor(current_kernel),
                              solver_tensor(scale))
        self.kxk.weight.copy_(solver_tensor(self.kxk.weight) + change)
        wanted_bias = torch.zeros_like(current_bias) if bias is None else bias
        self.kxk_bn.bias.add_(wanted_bias - current_bias)
