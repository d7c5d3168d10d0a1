"""INT8 deployment: layers that train on their INT8 deploy grid, and tools/quantize.py.

Tolerances: the fake-quantized kernel a layer trains with and the weight the
INT8 ONNX model dequantizes are compared bit for bit; a layer on its grid
followed by its norm equals, in eval mode, the deployed conv holding the
INT8 kernel to 1e-5 relative (float32); the INT8 model of a tiny run agrees
with its float32 (fake-quantized) model at an output SQNR of at least 20 dB
on the calibration data and the same class for at least 75 % of the test
images (measured on this project's CPU: 27.8 dB and 94 %; post-training
INT8 of the same weights 26.4 dB).
"""
import json
import os

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner
from onnx import numpy_helper
from torch import nn

import tiny_runs
from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa.backbones import OREPARepVGG, OREPAResNet
from mmorepa import reparameterize
from mmorepa.engine import ReparamError, export_deploy, load_trained_model, read_checkpoint
from mmorepa.engine.onnx_export import export_onnx, export_target, onnxruntime_outputs
from mmorepa.layers import ReparamConv2d, build_orepa_conv
from mmorepa.quantization import (INT8_GRID_KEY, INT8_MAX, WEIGHT_RANGES, int8_weight_grid,
                                  quantize_kernels)
from mmorepa.quantization.onnx_int8 import (BatchReader, conv_nodes, executed_conv_names,
                                            quantize_onnx_int8, weight_overrides)
from mmorepa.quantization.ptq import float_onnx_path, quantize_checkpoint
from mmorepa.quantization.tasks import task_of
from tools import quantize as quantize_tool
from tools.train import build_config, parse_args

CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
# (in, out, kernel, stride, groups, bias): dense, 1x1, depthwise, large and strided.
SHAPES = [(8, 16, 3, 1, 1, False), (8, 8, 1, 1, 1, False), (8, 8, 3, 1, 8, False),
          (4, 8, 5, 2, 1, True), (16, 8, 3, 2, 2, False)]


def conv_then_norm(in_channels, out_channels, kernel, stride, groups, bias, seed=0):
    generator = torch.Generator().manual_seed(seed)
    layer = build_orepa_conv(in_channels, out_channels, kernel, stride=stride,
                             padding=kernel // 2, groups=groups, bias=bias)
    model = nn.Sequential(layer, nn.BatchNorm2d(out_channels), nn.ReLU())
    randomize_scales(randomize_norms(model, generator), generator)
    with torch.no_grad():
        model[1].weight[0] = 0  # a channel that deploys as zeros
        model[1].weight[1] *= -1
    return model


@pytest.mark.parametrize('shape', SHAPES)
def test_layer_on_its_grid_equals_the_int8_deploy_conv(shape):
    model = conv_then_norm(*shape)
    reference = model[0].squeeze()
    assert quantize_kernels(model) == ['0']
    layer, norm = model[0], model[1]
    with torch.no_grad():
        kernel, _ = layer.squeezed_kernel()
        folded, scales = layer.kernel_quantizer.folded(kernel)
        fold = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    # Symmetric INT8 per output channel: integers in [-127, 127], peak at 127.
    steps = folded / scales.view(-1, 1, 1, 1)
    levels = steps.round()
    assert (steps - levels).abs().max() < 1e-4
    assert torch.equal(levels.abs().flatten(1).amax(1)[1:], torch.full((shape[1] - 1, ), 127.))
    assert torch.equal(folded[0], torch.zeros_like(folded[0]))
    assert_close_to_scale(folded[1:], (kernel * fold.view(-1, 1, 1, 1))[1:], rel=1 / INT8_MAX)
    # Eval: the layer and its norm are the deployed conv holding that kernel.
    x = torch.randn(2, shape[0], 9, 9, generator=torch.Generator().manual_seed(1))
    model.eval()
    bias = norm.bias - norm.running_mean * fold
    if layer.bias is not None:
        bias = bias + layer.bias * fold
    expected = F.relu(F.conv2d(x, folded, bias, layer.stride, layer.padding, layer.dilation,
                               layer.groups))
    with torch.no_grad():
        assert_close_to_scale(model(x), expected, rel=1e-5)
        assert_close_to_scale(reparameterize(model)(x), expected, rel=1e-5)
    # Off again: the float path as before, exactly.
    quantize_kernels(model, None)
    assert torch.equal(model[0].squeeze().weight, reference.weight)


def test_straight_through_gradient_reaches_every_channel():
    model = conv_then_norm(8, 16, 3, 1, 1, False).train()
    quantize_kernels(model)
    layer, norm = model[0], model[1]
    kernel = layer.squeezed_kernel()[0].detach().requires_grad_()
    x = torch.randn(4, 8, 9, 9)
    weights = torch.randn(4, 16, 9, 9)
    out = norm(F.conv2d(x, layer.kernel_quantizer(kernel), None, layer.stride, layer.padding))
    (out * weights).sum().backward()
    # Every norm scale learns, the zero one included: its channel convolves
    # with its own kernel on a grid, not with zeros (the folded kernel), so the
    # norm sees a signal; its kernel learns once the scale moves.
    assert kernel.grad.flatten(1).abs().amax(1)[1:].min() > 0
    assert norm.weight.grad.abs().min() > 0
    model(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_frozen_layers_on_their_grid_reuse_the_cached_kernel():
    model = conv_then_norm(8, 16, 3, 1, 1, False).eval()
    quantize_kernels(model)
    model[0].requires_grad_(False)
    x = torch.randn(2, 8, 9, 9)
    first = model(x)
    assert model[0]._kernel_cache._value is not None
    assert torch.equal(model(x), first)


def test_compiled_model_on_its_grid_matches_eager():
    model = conv_then_norm(8, 16, 3, 1, 1, False).eval()
    quantize_kernels(model)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        assert_close_to_scale(torch.compile(model)(x), model(x), rel=1e-5)


@pytest.mark.parametrize('weight_range', sorted(WEIGHT_RANGES))
def test_onnxruntime_int8_weights_are_the_training_grid(weight_range, tmp_path):
    model = nn.Sequential(conv_then_norm(8, 16, 3, 1, 1, False),
                          conv_then_norm(16, 8, 1, 1, 1, True, seed=1))
    assert len(quantize_kernels(model, weight_range)) == 2
    grid = int8_weight_grid(model.eval())
    assert grid['range'] == weight_range
    holder = nn.Module()
    holder.backbone = model
    x = torch.randn(2, 8, 9, 9)
    fp32, int8 = str(tmp_path / 'fp32.onnx'), str(tmp_path / 'int8.onnx')
    export_onnx(holder, x, fp32, backbone_only=True)
    deployed = reparameterize(model)
    nodes = conv_nodes(executed_conv_names(deployed, deployed, x), fp32)
    quantize_onnx_int8(fp32, int8, BatchReader([x.numpy()], 1, lambda line: None),
                       weight_overrides(nodes, grid['scales'], weight_range), weight_range)
    weights = dequantized_weights(int8, nodes)
    for name in ('0.0', '1.0'):
        layer = model.get_submodule(name)
        with torch.no_grad():
            folded, scales = layer.kernel_quantizer.folded(layer.squeezed_kernel()[0])
        assert torch.equal(scales, grid['scales'][name])
        assert np.array_equal(folded.numpy(), weights[name])
        levels = (folded / scales.view(-1, 1, 1, 1)).round().abs().max()
        assert levels == WEIGHT_RANGES[weight_range]


def test_layers_without_a_training_kernel_are_refused():
    with pytest.raises(ValueError, match='DBBConv2d'):
        OREPAResNet(18, reparam='dbb', quantize_kernels=True)
    with pytest.raises(ValueError, match="RepVGG's 1x1"):
        OREPARepVGG('A0', quantize_kernels=True)
    with pytest.raises(ValueError, match='no re-param layer'):
        quantize_kernels(nn.Sequential(nn.Conv2d(3, 3, 3)))
    with pytest.raises(ValueError, match=r"quantize_kernels must be one of \(False, True, "
                       r"'full', 'reduced'\), got 'int4'"):
        OREPAResNet(18, quantize_kernels='int4')


def test_norms_replaced_after_the_switch_are_folded_or_refused():
    from mmengine.model import convert_sync_batchnorm
    # A Runner converts to SyncBN after building; training pairs the new norms.
    backbone = convert_sync_batchnorm(OREPAResNet(18, quantize_kernels='reduced')).train()
    modules = {id(m) for m in backbone.modules()}
    quantizers = [m.kernel_quantizer for m in backbone.modules()
                  if isinstance(m, ReparamConv2d)]
    assert len(quantizers) == 17
    assert all(isinstance(q.norm, nn.SyncBatchNorm) and id(q.norm) in modules
               and q.weight_range == 'reduced' for q in quantizers)
    # Any other model: the export refuses a stale pairing by name.
    model = conv_then_norm(8, 16, 3, 1, 1, False)
    quantize_kernels(model)
    model[1] = nn.BatchNorm2d(16)
    with pytest.raises(ValueError, match="the norm layer '0' folds is no longer in the model"):
        int8_weight_grid(model)


def test_models_without_an_evaluated_tensor_forward_are_refused():
    from mmdet.models.detectors import FasterRCNN
    two_stage = FasterRCNN.__new__(FasterRCNN)  # the type decides; nothing is built
    for model in (two_stage, nn.Sequential()):
        with pytest.raises(ReparamError, match=f'builds {type(model).__name__}'):
            task_of(model)


def train_qat_run(root):
    """One epoch of the shipped OREPA-ResNet-18 config from a stock checkpoint
    with the one QAT line, EMA, CPU AMP and a frozen stem and first stage,
    exported by DeployCheckpointHook."""
    root.mkdir()
    cfg = tiny_runs.classification(CONFIG, str(root / 'data'), str(root / 'work'))
    cfg.model.backbone.update(quantize_kernels=True, frozen_stages=1)
    cfg.custom_hooks.insert(0, dict(type='EMAHook', momentum=0.01))
    config = str(root / 'tiny.py')
    cfg.dump(config)
    cfg = build_config(parse_args([config, '--amp', '--work-dir', str(root / 'work')]))
    Runner.from_cfg(cfg).train()
    return cfg, config


def dequantized_weights(int8_path, nodes):
    """What each conv of the INT8 file dequantizes its weight to, by module name."""
    graph = onnx.load(int8_path).graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    by_name = {node.name: node for node in graph.node}
    weights = {}
    for name, (node_name, _, _) in nodes.items():
        dequantize = producers[by_name[node_name].input[1]]
        assert dequantize.op_type == 'DequantizeLinear'
        values, scales = (initializers[key] for key in dequantize.input[:2])
        assert values.dtype == np.int8
        weights[name] = values.astype(np.float32) * scales.reshape(-1, 1, 1, 1)
    return weights


@pytest.mark.slow
def test_runner_runs_to_int8(tmp_path):
    """One tiny run (pytest-xdist would build a shared fixture once per worker)
    serves both ways to INT8 and the refusals."""
    cfg, config = train_qat_run(tmp_path / 'run')
    check_qat_run_goes_to_int8_on_its_grid(cfg, tmp_path)
    check_post_training_int8_and_bad_input(cfg, config, tmp_path)


def check_qat_run_goes_to_int8_on_its_grid(cfg, tmp_path):
    deploy = os.path.join(cfg.work_dir, 'epoch_1_deploy.pth')
    scales = read_checkpoint(deploy)['meta']['mmorepa'][INT8_GRID_KEY]['scales']
    out = str(tmp_path / 'int8.onnx')
    report = quantize_checkpoint(cfg, deploy, out, calib_batches=2, rounds=1, repeats=1,
                                 log=lambda line: None)
    print(f'QAT run to INT8: calibration SQNR {report["calibration_sqnr_db"]:.1f} dB, '
          f'test SQNR {report["sqnr_db"]:.1f} dB, agreement {report["agreement"]:.2f}')
    assert report['weights'] == 'checkpoint scales'
    assert report['calibration_sqnr_db'] >= 20 and report['agreement'] >= 0.75
    # The float32 ONNX file is the averaged model on its grid, as it trained.
    trained = load_trained_model(cfg, os.path.join(cfg.work_dir, 'epoch_1.pth')).model
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = export_target(trained, False)(inputs)[0]
    assert_close_to_scale(torch.from_numpy(onnxruntime_outputs(float_onnx_path(out),
                                                               inputs)[0]), expected, rel=1e-4)
    # Bit for bit: the INT8 weights are the kernels the layers trained with.
    deployed = load_trained_model(cfg, deploy).model
    nodes = conv_nodes(executed_conv_names(deployed, export_target(deployed, False), inputs),
                       float_onnx_path(out))
    int8 = dequantized_weights(out, nodes)
    layers = {n: m for n, m in trained.named_modules() if isinstance(m, ReparamConv2d)}
    assert set(layers) == set(scales) and len(layers) == 17
    for name, layer in layers.items():
        with torch.no_grad():
            folded, layer_scales = layer.kernel_quantizer.folded(layer.squeezed_kernel()[0])
        assert torch.equal(layer_scales, scales[name]), name
        assert np.array_equal(folded.numpy(), int8[name]), name


def check_post_training_int8_and_bad_input(cfg, config, tmp_path):
    trained = os.path.join(cfg.work_dir, 'epoch_1.pth')
    # The same weights off their grid: a float32 model for post-training INT8.
    float_cfg = Config.fromfile(config)
    float_cfg.model.backbone.quantize_kernels = False
    export = export_deploy(float_cfg, trained, str(tmp_path / 'float'))
    assert INT8_GRID_KEY not in read_checkpoint(export.checkpoint)['meta']['mmorepa']
    out = str(tmp_path / 'ptq.onnx')
    assert quantize_tool.main([config, export.checkpoint, out, '--calib-batches', '2',
                               '--rounds', '1', '--repeats', '1',
                               '--json', str(tmp_path / 'ptq.json')]) == 0
    with open(tmp_path / 'ptq.json') as file:
        report = json.load(file)
    print(f'post-training INT8: calibration SQNR {report["calibration_sqnr_db"]:.1f} dB')
    assert report['weights'] == 'calibrated' and report['calibration_sqnr_db'] >= 20
    assert os.path.exists(out) and os.path.exists(float_onnx_path(out))
    # A train-form checkpoint, no calibration data: an error, nothing written.
    bad = str(tmp_path / 'bad.onnx')
    with pytest.raises(ReparamError, match='train form checkpoint'):
        quantize_checkpoint(cfg, trained, bad)
    deploy = os.path.join(cfg.work_dir, 'epoch_1_deploy.pth')
    with pytest.raises(ReparamError, match="trained on the 'full' INT8 grid"):
        quantize_checkpoint(cfg, deploy, bad, weight_range='reduced')
    edited = read_checkpoint(deploy)
    edited['meta']['mmorepa'][INT8_GRID_KEY]['range'] = 'int4'
    torch.save(edited, str(tmp_path / 'edited.pth'))
    with pytest.raises(ReparamError, match='must hold a range in'):
        quantize_checkpoint(cfg, str(tmp_path / 'edited.pth'), bad)
    empty = Config.fromfile(config)
    empty.train_dataloader.dataset.indices = []
    with pytest.raises(ReparamError, match='no calibration data'):
        quantize_checkpoint(empty, export.checkpoint, bad)
    empty.train_dataloader = None
    with pytest.raises(ReparamError, match='has no train_dataloader'):
        quantize_checkpoint(empty, export.checkpoint, bad)
    assert quantize_tool.main([config, trained, bad]) == 1
    assert not os.path.exists(bad) and not os.path.exists(float_onnx_path(bad))
    with pytest.raises(SystemExit):
        quantize_tool.main([config, export.checkpoint, bad, '--calib-batches', '0'])
    with pytest.raises(SystemExit):
        quantize_tool.main([config, export.checkpoint, export.checkpoint])
    assert not os.path.exists(bad)
