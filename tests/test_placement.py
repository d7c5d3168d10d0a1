"""Branch placement: every branch folded into the kernel or run on the feature
map gives the same output and gradients (float64, 1e-10 of scale), over random
geometries and padding classes; the cost model's choice; the switch in configs;
INT8 training folds every branch; a tiny Runner run with ``auto`` runs branches
on the feature map and exports the network its folded kernels make."""
import dataclasses
import os

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from mmcv.cnn import build_conv_layer
from mmengine.registry import MODELS
from torch import nn

import record_outputs_hook  # noqa: F401  (registers RecordBackboneHook, which tiny_runs adds)
import tiny_runs
from helpers import assert_close_to_scale
from mmorepa.backbones import OREPARepVGG, OREPAResNet
from mmorepa.layers import (OREPA1x1Conv2d, OREPAConv2d, OREPALargeConv2d, ForwardPolicy,
                            GeneratedKernelConv2d, build_orepa_conv, quantize_kernels,
                            set_forward_policy)
from mmorepa.layers.placement import InputGeometry

F64 = torch.float64


def _randomized(layer):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in layer.parameters():
            param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.3)
    return layer


def _output_and_gradients(layer, x, feature_side):
    """Forward and backward with ``feature_side`` forced (an instance override of
    the layer's choice), under placement 'auto'."""
    set_forward_policy(layer, placement='auto')
    layer.feature_side = lambda shape: tuple(feature_side)
    layer.zero_grad()
    x = x.detach().requires_grad_(True)
    out = layer(x)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * weights).sum().backward()
    del layer.feature_side
    return [out.detach(), x.grad] + [p.grad for p in layer.parameters()]


def assert_every_placement_is_exact(layer, x):
    """Each branch alone on the feature map, and all of them, against all folded."""
    folded = _output_and_gradients(layer, x, ())
    names = layer.branch_names()
    for feature_side in [(index, ) for index in range(len(names))] + [tuple(range(len(names)))]:
        placed = _output_and_gradients(layer, x, feature_side)
        for actual, expected in zip(placed, folded):
            assert_close_to_scale(actual, expected)


@settings(max_examples=30, deadline=None)
@given(in_per_group=st.integers(1, 4), out_per_group=st.integers(1, 4),
       groups=st.sampled_from([1, 2, 3]), kernel_size=st.sampled_from([1, 3, 5]),
       stride=st.integers(1, 3), padding=st.integers(0, 3), dilation=st.integers(1, 2),
       bias=st.booleans(), batch=st.integers(1, 3), height=st.integers(5, 9),
       width=st.integers(5, 9))
def test_orepa_branches_are_exact_on_either_side(in_per_group, out_per_group, groups,
                                                 kernel_size, stride, padding, dilation, bias,
                                                 batch, height, width):
    assume(min(height, width) + 2 * padding > dilation * (kernel_size - 1))
    in_channels, out_channels = in_per_group * groups, out_per_group * groups
    layer = _randomized(OREPAConv2d(in_channels, out_channels, kernel_size, stride, padding,
                                    dilation, groups, bias).double())
    x = torch.randn(batch, in_channels, height, width, dtype=F64)
    assert_every_placement_is_exact(layer, x)


@pytest.mark.parametrize('channels,stride', [(4, 1), (6, 2)])
def test_depthwise_and_rep_1x1_are_exact_on_either_side(channels, stride):
    depthwise = _randomized(OREPAConv2d(channels, channels, 3, stride, 1, groups=channels))
    assert_every_placement_is_exact(depthwise.double(), torch.randn(2, channels, 7, 7, dtype=F64))
    rep_1x1 = _randomized(OREPA1x1Conv2d(channels, 2 * channels, 1, stride, bias=True))
    assert_every_placement_is_exact(rep_1x1.double(), torch.randn(2, channels, 7, 7, dtype=F64))


def _same_padding(stride):
    # mmcv's TensorFlow "same" padding, as mmpretrain's EfficientNet builds it.
    return build_orepa_conv(4, 6, 3, stride, 0, bias=False,
                            stock_conv_cfg=dict(type='Conv2dAdaptivePadding'))


def _reflect_padding(stride):
    layer = OREPAConv2d(4, 6, 3, stride, 1)
    return layer.convolve_like(nn.Conv2d(4, 6, 3, stride, 1, bias=False, padding_mode='reflect'))


@pytest.mark.parametrize('build', [_same_padding, _reflect_padding], ids=['same', 'reflect'])
@pytest.mark.parametrize('stride', [1, 2])
def test_padding_classes_are_exact_on_either_side(build, stride):
    assert_every_placement_is_exact(_randomized(build(stride)).double(),
                                    torch.randn(2, 4, 9, 8, dtype=F64))


def test_auto_runs_the_1x1_kxk_branch_on_small_maps_only():
    layer = OREPAConv2d(512, 512, 3, 1, 1)
    names = layer.branch_names()
    small = layer.feature_side((64, 512, 1, 1))
    assert [names[index] for index in small] == ['1x1_kxk']
    assert layer.feature_side((32, 512, 7, 7)) == ()
    costs = layer.branches.placement_costs(InputGeometry.of((64, 512, 1, 1), layer.stride))
    chosen = costs[names.index('1x1_kxk')]
    # Cheaper in multiply-adds and keeping no more elements than folding.
    assert chosen.feature_macs < chosen.kernel_macs
    assert chosen.feature_elements <= chosen.kernel_elements
    rep_1x1 = OREPA1x1Conv2d(512, 2048)
    assert rep_1x1.feature_side((32, 512, 1, 1)) == (rep_1x1.branch_names().index('1x1_1x1'), )
    assert rep_1x1.feature_side((32, 512, 56, 56)) == ()


def test_the_linear_stem_always_folds():
    stem = OREPALargeConv2d(3, 64, 7, 2, 3, placement='feature')
    assert stem.feature_side((2, 3, 32, 32)) == ()
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(stem(x), nn.functional.conv2d(x, stem.squeezed_kernel()[0], None, 2, 3))


def test_int8_training_folds_every_branch():
    layer = nn.Sequential(OREPAConv2d(16, 16, 3, 1, 1, placement='auto'), nn.BatchNorm2d(16))
    quantize_kernels(layer)
    assert layer[0].forward_policy.folds_every_branch
    layer[0].feature_output = None  # never called: the grid needs the whole kernel
    x = torch.randn(2, 16, 1, 1)
    quantizer = layer[0].kernel_quantizer
    expected = nn.functional.conv2d(x, quantizer(layer[0].squeezed_kernel()[0]), None, 1, 1)
    assert torch.equal(layer[0](x), expected)
    with pytest.raises(ValueError, match="placement='feature'"):
        quantize_kernels(nn.Sequential(OREPAConv2d(4, 4, 3, placement='feature')))


def test_policy_and_switches_refuse_unknown_values():
    with pytest.raises(ValueError, match='placement'):
        ForwardPolicy(placement='features')
    with pytest.raises(TypeError, match='compile_kernel'):
        ForwardPolicy(compile_kernel='yes')
    with pytest.raises(TypeError, match='not fields of ForwardPolicy'):
        set_forward_policy(OREPAConv2d(4, 4, 3), placment='kernel')
    with pytest.raises(ValueError, match='branch_placement'):
        OREPAResNet(18, branch_placement='both')
    with pytest.raises(ValueError, match='placement'):
        OREPAConv2d(4, 4, 3, placement='everywhere')


def _placements(model):
    return {m.forward_policy.placement for m in model.modules()
            if isinstance(m, GeneratedKernelConv2d)}


def test_placement_switch_in_configs():
    assert _placements(OREPAResNet(18)) == {'auto'}
    assert _placements(OREPAResNet(50, branch_placement='kernel')) == {'kernel'}
    assert _placements(OREPARepVGG('A0', branch_placement='feature')) == {'feature'}
    stock = MODELS.build(dict(type='mmdet.ResNet', depth=18,
                              conv_cfg=dict(type='OREPA', placement='kernel')))
    assert _placements(stock) == {'kernel'}
    conv = build_conv_layer(dict(type='OREPA', rep_1x1=False, placement='feature'), 4, 4, 1)
    assert type(conv) is nn.Conv2d  # a 1x1 left plain takes no placement
    # The policy is not part of the weights: the state dict does not change.
    resnet = OREPAResNet(18)
    keys = list(resnet.state_dict())
    set_forward_policy(resnet, placement='feature', compile_kernel=False)
    assert list(resnet.state_dict()) == keys


def test_policy_fields_change_together_and_keep_the_others():
    layer = OREPAConv2d(4, 4, 3, placement='kernel')
    set_forward_policy(layer, kernel_under_autocast=False)
    assert layer.forward_policy == dataclasses.replace(ForwardPolicy(), placement='kernel',
                                                       kernel_under_autocast=False)


def test_auto_runner_run_places_branches_and_exports_the_same_network(tmp_path):
    """The shipped OREPA-ResNet-18 config, one tiny epoch (32x32 images, batch
    4: layer4 sees 1x1 maps) with the default placement, 'auto'."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmorepa.engine import load_trained_model, read_checkpoint, squeezed_state_dict
    cfg = tiny_runs.classification('configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py',
                                   str(tmp_path / 'data'), str(tmp_path / 'work'))
    assert 'branch_placement' not in cfg.model.backbone  # the default
    runner = Runner.from_cfg(cfg)
    runner.train()
    layers = [m for m in runner.model.modules() if isinstance(m, GeneratedKernelConv2d)]
    assert {layer.forward_policy.placement for layer in layers} == {'auto'}
    # Some branches ran on the feature map (each layer remembers its choices).
    assert any(any(chosen for chosen in layer._placements.values()) for layer in layers)
    deployed = read_checkpoint(os.path.join(cfg.work_dir, 'epoch_1_deploy.pth'))['state_dict']
    # The export does not depend on the placement: all folded, bit for bit.
    set_forward_policy(runner.model, placement='kernel')
    expected = squeezed_state_dict(runner.model)
    assert deployed.keys() == expected.keys()
    assert all(torch.equal(deployed[key], value) for key, value in expected.items())
    deploy_cfg = Config.fromfile(os.path.join(cfg.work_dir, 'deploy_config.py'))
    stock = load_trained_model(deploy_cfg, deploy_cfg.load_from)
    trained = load_trained_model(cfg, os.path.join(cfg.work_dir, 'epoch_1.pth'))
    batch = next(iter(Runner.build_dataloader(cfg.test_dataloader)))
    with torch.no_grad():
        outputs = [torch.stack([s.pred_score for s in model.model.eval().test_step(batch)])
                   for model in (stock, trained)]
    assert_close_to_scale(outputs[0], outputs[1], rel=1e-4)
