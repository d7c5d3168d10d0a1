"""Conv types that pick a re-param layer by kernel size, for ``conv_cfg``.

A backbone builds all its convs through one ``conv_cfg``; these types turn a
stock backbone into the published re-param layout without editing it.
"""
from typing import Optional, Sequence

import torch
from mmcv.cnn import build_conv_layer
from mmengine.registry import MODELS
from torch import nn

from .base import ReparamConv2d
from .dbb import DBBConv2d
from .orepa_1x1 import OREPA1x1Conv2d
from .orepa_conv import OREPA_BRANCHES, OREPAConv2d
from .orepa_large import GENERATOR_KERNEL_SIZE, OREPALargeConv2d

# OREPA-VGG drops OREPA's 1x1 branch (the RepVGG block has one) and starts its
# kernels Kaiming-uniform with slope 1 (published).
OREPA_VGG_BRANCHES = ('origin', 'avg', 'prior', '1x1_kxk', 'dws')
OREPA_VGG_KAIMING_A = 1.0
# The published DBB-ResNet keeps kernels this large (the 7x7 stem) plain.
DBB_PLAIN_FROM_SIZE = 7


def _size_and_groups(kernel_size, args, kwargs):
    size = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    # nn.Conv2d's positional order: stride, padding, dilation, groups, bias.
    groups = kwargs.get('groups', args[3] if len(args) > 3 else 1)
    return size, groups


@MODELS.register_module('OREPA')
def build_orepa_conv(in_channels: int,
                     out_channels: int,
                     kernel_size: int,
                     *args,
                     branches: Sequence[str] = tuple(OREPA_BRANCHES),
                     scaling: Optional[str] = 'vector',
                     rep_1x1: bool = True,
                     linear_stem: bool = True,
                     stock_conv_cfg: Optional[dict] = None,
                     placement: str = 'auto',
                     **kwargs) -> nn.Module:
    """The layer that the published OREPA-ResNet uses for this shape.

    Dense 1x1 convs become Rep-1x1, grouped 1x1 convs, 3x3 and other small odd
    kernels :class:`OREPAConv2d`, and an odd ``k >= 5`` the linear deep stem
    where its last 3x3 generator can hold any kernel (a dense conv with
    ``in_channels * k * k <= out_channels * 9``, as the 7x7 stem from 3
    channels); any other large kernel is one OREPA block, so that every layer
    can start from stock weights. The switches select the paper's Table 2
    ablation rows.

    Args:
        in_channels, out_channels, kernel_size, *args, **kwargs: As ``nn.Conv2d``.
        branches (Sequence[str]): Branches of the k x k blocks and stem generators.
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        rep_1x1 (bool): Rep-1x1 for 1x1 convs; else a plain conv.
        linear_stem (bool): The linear deep stem for ``k >= 5``; else a single
            OREPA ``k x k`` block.
        stock_conv_cfg (dict, optional): The conv type the backbone builds
            without OREPA, when it is not a plain ``nn.Conv2d``, e.g.
            ``dict(type='Conv2dAdaptivePadding')`` for mmpretrain's
            EfficientNet: the layers convolve (pad) as it does and squeeze
            into it (:meth:`ReparamConv2d.convolve_like`), and convs left plain
            are built as it. Default: None (``nn.Conv2d``).
        placement (str): Where the layers' branches run in training:
            ``'auto'`` (default), ``'kernel'`` or ``'feature'``
            (:class:`~mmorepa.layers.ForwardPolicy`).
    """
    size, groups = _size_and_groups(kernel_size, args, kwargs)
    if size == 1 and groups == 1 and not rep_1x1:
        return build_conv_layer(stock_conv_cfg, in_channels, out_channels, kernel_size, *args,
                                **kwargs)
    if size == 1 and groups == 1:
        layer = OREPA1x1Conv2d(in_channels, out_channels, kernel_size, *args, scaling=scaling,
                               placement=placement, **kwargs)
    elif size >= 5 and linear_stem and groups == 1 and (
            in_channels * size * size <= out_channels * GENERATOR_KERNEL_SIZE**2):
        layer = OREPALargeConv2d(in_channels, out_channels, kernel_size, *args,
                                 branches=branches, scaling=scaling, placement=placement,
                                 **kwargs)
    else:
        layer = OREPAConv2d(in_channels, out_channels, kernel_size, *args, branches=branches,
                            scaling=scaling, placement=placement, **kwargs)
    if stock_conv_cfg is not None:
        with torch.device('meta'):
            stock = build_conv_layer(stock_conv_cfg, in_channels, out_channels, kernel_size,
                                     *args, **kwargs)
        layer.convolve_like(stock)
    return layer


@MODELS.register_module('OREPAVGG')
def build_orepa_vgg_conv(in_channels: int,
                         out_channels: int,
                         kernel_size: int,
                         *args,
                         branches: Sequence[str] = OREPA_VGG_BRANCHES,
                         scaling: Optional[str] = 'vector',
                         placement: str = 'auto',
                         **kwargs) -> nn.Module:
    """The convs of an OREPA-VGG block: its 3x3 branch is OREPA, its 1x1 plain.

    Used as ``conv_cfg`` of mmpretrain's ``RepVGGBlock``, whose ``branch_3x3``
    norm then is the OREPA post-addition norm (docs/method.md, OREPA-VGG).

    Args:
        in_channels, out_channels, kernel_size, *args, **kwargs: As ``nn.Conv2d``.
        branches (Sequence[str]): Branches of the 3x3 conv (published: five).
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        placement (str): As for ``'OREPA'``.
    """
    size, _ = _size_and_groups(kernel_size, args, kwargs)
    if size == 1:
        return nn.Conv2d(in_channels, out_channels, kernel_size, *args, **kwargs)
    return OREPAConv2d(in_channels, out_channels, kernel_size, *args, branches=branches,
                       scaling=scaling, kaiming_a=OREPA_VGG_KAIMING_A, placement=placement,
                       **kwargs)


@MODELS.register_module('DBB')
def build_dbb_conv(in_channels: int,
                   out_channels: int,
                   kernel_size: int,
                   *args,
                   norm_cfg: dict = dict(type='BN'),
                   **kwargs) -> nn.Module:
    """The published DBB-ResNet layout: the Diverse Branch Block for ``3 <= k < 7``,
    a plain conv for 1x1 convs and for the 7x7 stem.

    Args:
        in_channels, out_channels, kernel_size, *args, **kwargs: As ``nn.Conv2d``.
        norm_cfg (dict): Norm of the DBB branches. Default: ``dict(type='BN')``.
    """
    size, _ = _size_and_groups(kernel_size, args, kwargs)
    if size == 1 or size >= DBB_PLAIN_FROM_SIZE:
        return nn.Conv2d(in_channels, out_channels, kernel_size, *args, **kwargs)
    return DBBConv2d(in_channels, out_channels, kernel_size, *args, norm_cfg=norm_cfg, **kwargs)


def builds_reparam_layers(conv_type) -> bool:
    """Whether a registered conv type (class or builder) builds re-param layers.

    Args:
        conv_type: What a ``conv_cfg``'s type names in the registry.
    """
    if conv_type in (build_orepa_conv, build_orepa_vgg_conv, build_dbb_conv):
        return True
    return isinstance(conv_type, type) and issubclass(conv_type, ReparamConv2d)
