"""Post-training INT8 of an exported float32 ONNX file, by onnxruntime.

onnxruntime's static quantization in QDQ format: per-output-channel symmetric
INT8 weights, unsigned 8-bit activations calibrated by min / max over the
given batches (the combination its CPU kernels run as integer convolutions).
On x86 CPUs without VNNI the weights need the reduced range
(``reduce_range``, :data:`mmorepa.layers.WEIGHT_RANGES`) or the integer
convolutions saturate. For a run that trained on its INT8 grid the weight
scales are handed in
(``TensorQuantOverrides``), so the INT8 kernels are the ones training used
and only the activations are calibrated. docs/int8.md compares the choices.
"""
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from torch import Tensor, nn

from ..engine.checkpoint_io import atomic_output
from ..engine.errors import ReparamError
from ..layers import WEIGHT_RANGES


class BatchReader(CalibrationDataReader):
    """Calibration batches for onnxruntime, with progress.

    Args:
        batches (Iterable[np.ndarray]): Network inputs (``N x C x H x W``).
        total (int): How many there are (for the progress lines).
        log (Callable[[str], None]): Where progress goes. Default: ``print``.
    """

    def __init__(self, batches: Iterable[np.ndarray], total: int,
                 log: Callable[[str], None] = print) -> None:
        self._batches: Iterator[np.ndarray] = iter(batches)
        self._total = total
        self._seen = 0
        self._log = log

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        batch = next(self._batches, None)
        if batch is None:
            return None
        self._seen += 1
        self._log(f'calibrating activations: batch {self._seen}/{self._total}')
        return {'input': batch}


def executed_conv_names(model: nn.Module, forward: Callable[[Tensor], object],
                        inputs: Tensor) -> List[str]:
    """Names of ``model``'s ``nn.Conv2d`` modules in the order ``forward(inputs)``
    (what was exported) runs them: the order the ONNX exporter writes their
    nodes in."""
    order: List[str] = []
    handles = [module.register_forward_hook(lambda *_, name=name: order.append(name))
               for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    try:
        with torch.no_grad():
            forward(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return order


def conv_weights(path: str) -> List[Tuple[onnx.NodeProto, np.ndarray]]:
    """Every Conv node of an ONNX file whose weight is stored in it, with that
    weight (for an export: the deployed kernel, norm folded in), in graph order."""
    graph = onnx.load(path).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    return [(node, onnx.numpy_helper.to_array(initializers[node.input[1]]))
            for node in graph.node if node.op_type == 'Conv' and node.input[1] in initializers]


def conv_nodes(names: List[str], path: str) -> Dict[str, Tuple[str, str, np.ndarray]]:
    """The Conv node of an exported ONNX file that each conv module became.

    The exporter writes the nodes in execution order and names each after
    its module's scope; both are checked, and the weight shapes.

    Args:
        names (list[str]): Module names of the convs in execution order
            (:func:`executed_conv_names`).
        path (str): The float32 ONNX file exported from that forward.

    Returns:
        dict: ``{module name: (node name, weight initializer name, weight)}``.

    Raises:
        ReparamError: The file is not of this model.
    """
    nodes = conv_weights(path)
    if len(nodes) != len(names):
        raise ReparamError(f'{path} has {len(nodes)} conv weights, the model runs '
                           f'{len(names)} convs: the ONNX file is not of this model')
    found = {}
    for name, (node, weight) in zip(names, nodes):
        scope = node.name.split('/')[-2] if '/' in node.name else ''
        if scope.split('.')[-1] != name.split('.')[-1]:
            raise ReparamError(f'conv {name} meets node {node.name!r} of {path}: the ONNX '
                               'file is not of this model')
        found[name] = (node.name, node.input[1], weight)
    return found


def weight_overrides(nodes: Dict[str, Tuple[str, str, np.ndarray]], scales: Dict[str, Tensor],
                     weight_range: str) -> Dict[str, List[dict]]:
    """onnxruntime's per-channel overrides that put given scales on the convs.

    Args:
        nodes (dict): :func:`conv_nodes` of the float32 ONNX file.
        scales (dict[str, Tensor]): Per-output-channel scales by module name.
        weight_range (str): The grid's range, ``'full'`` or ``'reduced'``.

    Raises:
        ReparamError: A scale belongs to no conv, or a weight does not lie on
            the grid of its scales (they belong to other weights).
    """
    levels = WEIGHT_RANGES[weight_range]
    unknown = sorted(set(scales) - set(nodes))
    if unknown:
        raise ReparamError(f'INT8 scales for {unknown[:3]} name no conv the model runs')
    overrides = {}
    for name, scale in scales.items():
        _, tensor_name, weight = nodes[name]
        scale = scale.numpy().astype(np.float32)
        if weight.shape[0] != scale.shape[0]:
            raise ReparamError(f'{name}: {scale.shape[0]} INT8 scales for a weight of '
                               f'{weight.shape[0]} output channels')
        steps = weight.reshape(len(scale), -1) / scale[:, None]
        if np.abs(steps).max() > levels + 0.5 or np.abs(steps - np.round(steps)).max() > 1e-2:
            raise ReparamError(f'{name}: the weights do not lie on the INT8 grid of their '
                               'scales (a checkpoint edited after export?)')
        overrides[tensor_name] = [dict(axis=0, scale=s, zero_point=np.int8(0)) for s in scale]
    return overrides


def quantize_onnx_int8(source: str, target: str, reader: CalibrationDataReader,
                       overrides: Optional[Dict[str, List[dict]]] = None,
                       weight_range: str = 'full') -> None:
    """Write the static INT8 (QDQ) model of the ONNX file ``source`` to
    ``target``, atomically.

    Args:
        source (str): Float32 ONNX file.
        target (str): INT8 ONNX file to write.
        reader (CalibrationDataReader): The calibration batches.
        overrides (dict, optional): Per-tensor weight overrides
            (:func:`weight_overrides`); their weight scales are kept as
            given (no bias-driven adjustment).
        weight_range (str): ``'full'`` or ``'reduced'`` weight grids.
    """
    extra_options = dict(WeightSymmetric=True, TensorQuantOverrides=overrides or {},
                         QDQDisableWeightAdjustForInt32Bias=bool(overrides))
    with atomic_output(target) as temporary:
        quantize_static(source, temporary, reader, quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=weight_range == 'reduced',
                        weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax, extra_options=extra_options)
