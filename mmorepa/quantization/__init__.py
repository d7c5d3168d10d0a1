"""INT8 deployment: re-param layers that train on their INT8 deploy grid
(:func:`quantize_kernels`), and post-training quantization of the squeezed
network in onnxruntime (:mod:`mmorepa.quantization.onnx_int8`); docs/int8.md."""
from .fake_quant import INT8_MAX, KernelQuantizer, channel_scales, fake_quantize
from .prepare import INT8_SCALES_KEY, int8_weight_scales, quantize_kernels

__all__ = [
    'INT8_MAX', 'INT8_SCALES_KEY', 'KernelQuantizer', 'channel_scales', 'fake_quantize',
    'int8_weight_scales', 'quantize_kernels'
]
