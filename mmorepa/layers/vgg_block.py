"""OREPAVGGBlock: a RepVGG block whose 3x3 branch is OREPA (spec 3.4), or plain."""
from typing import Optional

import torch
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.registry import MODELS
from torch import Tensor, nn

from ..kernels import fuse_conv_bn, pad_to_kernel_size
from .base import conv_kernel_and_bias

# OREPA-VGG drops OREPA's 1x1 branch: the RepVGG block already has one.
OREPA_VGG_BRANCHES = ('origin', 'avg', 'prior', '1x1_kxk', 'dws')
OREPA_VGG_CONV = dict(type='OREPAConv2d', branches=OREPA_VGG_BRANCHES, kaiming_a=1.0)


class RepVGGDeployBlock(nn.Module):
    """The squeezed RepVGG block: one conv with bias, then the activation.

    Attribute names match mmpretrain's ``RepVGGBlock(deploy=True)``
    (``branch_reparam``, ``act``), so its state dict loads there.
    """

    def __init__(self, conv: nn.Conv2d, act: nn.Module) -> None:
        super().__init__()
        self.branch_reparam = conv
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.branch_reparam(x))


@MODELS.register_module()
class OREPAVGGBlock(nn.Module):
    """``act(bn(conv3x3(x)) + bn(conv1x1(x)) + bn(x))``, squeezable to one 3x3 conv.

    With the default ``dense_conv_cfg`` the 3x3 branch is a five-branch OREPA
    conv followed by its post-addition norm: the published OREPA-VGG block.
    With ``dense_conv_cfg=None`` it is a plain 3x3 conv: the RepVGG block.
    The identity branch exists when ``in_channels == out_channels`` and
    ``stride == 1``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the 3x3 and 1x1 branches. Default: 1.
        groups (int): Groups of the 3x3 and 1x1 branches. Default: 1.
        dense_conv_cfg (dict | None): Conv config of the 3x3 branch.
            Default: OREPA with the five OREPA-VGG branches.
        norm_cfg (dict): Norm of every branch. Default: ``dict(type='BN')``.
        act_cfg (dict): Activation after the sum. Default: ``dict(type='ReLU')``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 groups: int = 1,
                 dense_conv_cfg: Optional[dict] = OREPA_VGG_CONV,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.branch_3x3 = ConvModule(in_channels, out_channels, 3, stride, 1, groups=groups,
                                     conv_cfg=dense_conv_cfg, norm_cfg=norm_cfg, act_cfg=None)
        self.branch_1x1 = ConvModule(in_channels, out_channels, 1, stride, 0, groups=groups,
                                     norm_cfg=norm_cfg, act_cfg=None)
        if in_channels == out_channels and stride == 1:
            self.branch_norm = build_norm_layer(norm_cfg, in_channels)[1]
        else:
            self.branch_norm = None
        self.act = build_activation_layer(act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.branch_norm is not None:
            out = out + self.branch_norm(x)
        return self.act(out)

    def squeezed_kernel(self):
        """The ``(kernel, bias)`` of the whole block before the activation."""
        kernel, bias = fuse_conv_bn(*conv_kernel_and_bias(self.branch_3x3.conv),
                                    self.branch_3x3.bn)
        kernel_1x1, bias_1x1 = fuse_conv_bn(self.branch_1x1.conv.weight, None,
                                            self.branch_1x1.bn)
        kernel = kernel + pad_to_kernel_size(kernel_1x1, 3)
        bias = bias + bias_1x1
        if self.branch_norm is not None:
            in_per_group = self.in_channels // self.groups
            identity = kernel.new_zeros(self.out_channels, in_per_group, 3, 3)
            channels = torch.arange(self.out_channels)
            identity[channels, channels % in_per_group, 1, 1] = 1.0
            kernel_id, bias_id = fuse_conv_bn(identity, None, self.branch_norm)
            kernel = kernel + kernel_id
            bias = bias + bias_id
        return kernel, bias

    @torch.no_grad()
    def squeeze(self) -> RepVGGDeployBlock:
        kernel, bias = self.squeezed_kernel()
        conv = self.branch_3x3.conv
        plain = nn.Conv2d(self.in_channels, self.out_channels, 3, conv.stride, 1,
                          groups=self.groups, bias=True, device=kernel.device,
                          dtype=kernel.dtype)
        plain.weight.copy_(kernel)
        plain.bias.copy_(bias)
        return RepVGGDeployBlock(plain, self.act).train(self.training)
