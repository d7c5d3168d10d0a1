"""Re-parameterizable conv layers, built on the kernel algebra.

Importing this package registers the layers in mmengine's ``MODELS``:
``'OREPA'`` (picks the published layer by kernel size), ``'OREPAConv2d'``,
``'OREPA1x1Conv2d'``, ``'OREPALargeConv2d'``, ``'DBB'`` and ``'OREPAVGGBlock'``.
"""
from .base import ReparamConv2d, conv_kernel_and_bias
from .branch_sum import BranchSum
from .dbb import DBBConv2d
from .factory import build_orepa_conv
from .orepa_1x1 import OREPA1x1Conv2d
from .orepa_conv import OREPA_BRANCHES, OREPAConv2d
from .orepa_large import OREPALargeConv2d
from .squeeze import reparameterize
from .vgg_block import OREPA_VGG_BRANCHES, OREPAVGGBlock, RepVGGDeployBlock

__all__ = [
    'ReparamConv2d', 'conv_kernel_and_bias', 'BranchSum', 'DBBConv2d', 'build_orepa_conv',
    'OREPA1x1Conv2d', 'OREPA_BRANCHES', 'OREPAConv2d', 'OREPALargeConv2d', 'reparameterize',
    'OREPA_VGG_BRANCHES', 'OREPAVGGBlock', 'RepVGGDeployBlock'
]
