"""The ``'OREPA'`` conv type: the published OREPA layer for each kernel size."""
from typing import Optional, Sequence

from mmengine.registry import MODELS
from torch import nn

from .orepa_1x1 import OREPA1x1Conv2d
from .orepa_conv import OREPA_BRANCHES, OREPAConv2d
from .orepa_large import OREPALargeConv2d


@MODELS.register_module('OREPA')
def build_orepa_conv(in_channels: int,
                     out_channels: int,
                     kernel_size: int,
                     *args,
                     branches: Sequence[str] = tuple(OREPA_BRANCHES),
                     scaling: Optional[str] = 'vector',
                     rep_1x1: bool = True,
                     deep_stem: bool = True,
                     **kwargs) -> nn.Module:
    """Build the OREPA layer that the published OREPA-ResNet uses for this shape.

    ``conv_cfg=dict(type='OREPA')`` turns a plain ResNet into that layout:
    1x1 convs become Rep-1x1 (when ``groups == 1``), 3x3 and other small odd
    kernels become :class:`OREPAConv2d`, and 7x7 (any odd ``k >= 5``) becomes the
    linear deep stem. The switches select the paper's Table 2 ablation rows.

    Args:
        in_channels, out_channels, kernel_size, *args, **kwargs: As ``nn.Conv2d``.
        branches (Sequence[str]): Branches of the k x k blocks and stem generators.
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        rep_1x1 (bool): Use Rep-1x1 for 1x1 convs; else plain ``nn.Conv2d``.
        deep_stem (bool): Use the linear deep stem for ``k >= 5``; else a
            single OREPA ``k x k`` block.
    """
    size = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    groups = kwargs.get('groups', args[4] if len(args) > 4 else 1)
    if size == 1 and groups == 1:
        if rep_1x1:
            return OREPA1x1Conv2d(in_channels, out_channels, kernel_size, *args,
                                  scaling=scaling, **kwargs)
        return nn.Conv2d(in_channels, out_channels, kernel_size, *args, **kwargs)
    if size >= 5 and deep_stem:
        return OREPALargeConv2d(in_channels, out_channels, kernel_size, *args,
                                branches=branches, scaling=scaling, **kwargs)
    return OREPAConv2d(in_channels, out_channels, kernel_size, *args, branches=branches,
                       scaling=scaling, **kwargs)
