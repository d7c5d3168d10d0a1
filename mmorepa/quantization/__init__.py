"""INT8 deployment: re-param layers that train on their INT8 deploy grid
(:func:`quantize_kernels`), and post-training quantization of the squeezed
network in onnxruntime (:mod:`mmorepa.quantization.onnx_int8`); docs/int8.md."""
from .fake_quant import (INT8_MAX, WEIGHT_RANGES, KernelQuantizer, channel_scales,
                         fake_quantize)
from .prepare import INT8_GRID_KEY, int8_weight_grid, quantize_kernels, weight_range_setting

__all__ = [
    'INT8_MAX', 'WEIGHT_RANGES', 'INT8_GRID_KEY', 'KernelQuantizer', 'channel_scales',
    'fake_quantize', 'int8_weight_grid', 'quantize_kernels', 'weight_range_setting'
]
