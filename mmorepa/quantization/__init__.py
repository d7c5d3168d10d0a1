"""INT8 deployment: post-training quantization of the squeezed network in
onnxruntime (:mod:`.onnx_int8`, :mod:`.ptq`) and the comparison with float32;
the layers' training on their INT8 deploy grid (:func:`quantize_kernels`) is
re-exported from :mod:`mmorepa.layers`. docs/int8.md."""
from ..engine.deploy import INT8_GRID_KEY
from ..layers.int8_grid import INT8_MAX, WEIGHT_RANGES, KernelQuantizer
from ..layers.int8_training import int8_weight_grid, quantize_kernels, weight_range_setting

__all__ = [
    'INT8_GRID_KEY', 'INT8_MAX', 'WEIGHT_RANGES', 'KernelQuantizer', 'int8_weight_grid',
    'quantize_kernels', 'weight_range_setting'
]
