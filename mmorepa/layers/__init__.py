"""Re-parameterizable conv layers, built on the kernel algebra.

Importing this package registers in mmengine's ``MODELS`` the layers
``'OREPAConv2d'``, ``'OREPA1x1Conv2d'``, ``'OREPALargeConv2d'``, ``'DBBConv2d'``
and the conv types ``'OREPA'``, ``'OREPAVGG'`` and ``'DBB'``, which pick the
published layer by kernel size. :func:`unsqueeze` puts the layers into any
built model, :func:`reparameterize` takes them out; :func:`quantize_kernels`
makes them train on their INT8 deploy grid; :func:`set_forward_policy` sets
how the generated-kernel layers compute their forward pass
(:class:`ForwardPolicy`: branch placement, kernel cache, compile, autocast).
"""
from .absent_norm import AbsentNorm
from .base import ReparamConv2d
from .branch_sum import BranchSum
from .dbb import DBBConv2d
from .forward_policy import PLACEMENTS, ForwardPolicy
from .generated_kernel import GeneratedKernelConv2d, set_forward_policy
from .factory import (OREPA_VGG_BRANCHES, build_dbb_conv, build_orepa_conv,
                      build_orepa_vgg_conv, builds_reparam_layers)
from .int8_grid import WEIGHT_RANGES, KernelQuantizer
from .int8_training import int8_weight_grid, quantize_kernels, weight_range_setting
from .kernel_cache import KernelCache
from .orepa_1x1 import OREPA1x1Conv2d
from .orepa_conv import OREPA_BRANCHES, OREPAConv2d
from .orepa_large import OREPALargeConv2d
from .squeeze import (Squeezable, conv_norm_pairs, drop_biases_before_norms, reparameterize,
                      set_submodule)
from .unsqueeze import CONV_KINDS, unsqueeze

__all__ = [
    'AbsentNorm', 'CONV_KINDS', 'ForwardPolicy', 'GeneratedKernelConv2d', 'PLACEMENTS',
    'set_forward_policy', 'ReparamConv2d', 'BranchSum', 'DBBConv2d', 'OREPA_VGG_BRANCHES',
    'build_dbb_conv', 'build_orepa_conv', 'build_orepa_vgg_conv', 'builds_reparam_layers',
    'KernelCache', 'OREPA1x1Conv2d', 'OREPA_BRANCHES', 'OREPAConv2d', 'OREPALargeConv2d',
    'Squeezable', 'conv_norm_pairs', 'drop_biases_before_norms', 'reparameterize',
    'set_submodule', 'unsqueeze', 'WEIGHT_RANGES', 'KernelQuantizer', 'int8_weight_grid',
    'quantize_kernels', 'weight_range_setting'
]
