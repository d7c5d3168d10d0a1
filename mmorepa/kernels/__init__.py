"""Kernel algebra: pure, differentiable functions on conv kernels.

The bottom layer of mmorepa. Everything here depends on torch alone and maps
one linear operation on feature maps to an operation on kernels, so that a
multi-branch block can be squeezed into a single convolution.
"""
from .batchnorm import fold_bias_into_bn_stats, fuse_conv_bn
from .composition import compose_1x1_kxk, compose_kxk_kxk, solve_second_kernel
from .geometry import grouped_identity, pad_to_kernel_size
from .pooling import avg_pool_kernel
from .prior import frequency_prior
from .separable import separable_to_dense
from .solver_tensor import solver_tensor

__all__ = [
    'fuse_conv_bn', 'fold_bias_into_bn_stats', 'compose_1x1_kxk',
    'compose_kxk_kxk', 'solve_second_kernel', 'grouped_identity', 'pad_to_kernel_size',
    'avg_pool_kernel', 'frequency_prior', 'separable_to_dense', 'solver_tensor'
]
