"""OREPA in backbones other than ResNet / RepVGG: the layers load a stock conv's
weights themselves, ``unsqueeze`` converts any model, the ``OREPABackbone``
wrapper reaches backbones without ``conv_cfg``, and each squeezes back into the
stock network exactly."""
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from torch import nn

from helpers import assert_close_to_scale
from mmorepa import reparameterize, unsqueeze
from mmorepa.engine import build_model
from mmorepa.engine.backbone_check import check_backbone, check_model, orepa_config
from mmorepa.engine.configs import deploy_config, is_reparam_config, stock_backbone_config
from mmorepa.layers import OREPAConv2d, ReparamConv2d, build_orepa_conv

# Relative output error (max error / max output) of a start from stock
# weights and of a squeeze: float32 and float64 (the bounds).
START_FLOAT32, EXACT_FLOAT64 = 1e-5, 1e-9


@st.composite
def conv_shapes(draw):
    groups_kind = draw(st.sampled_from(['dense', 'grouped', 'depthwise']))
    size = draw(st.sampled_from([1, 3, 5, 7]))
    per_group_in, per_group_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    groups = {'dense': 1, 'grouped': draw(st.integers(2, 3)), 'depthwise': 4}[groups_kind]
    if groups_kind == 'depthwise':
        per_group_in, per_group_out = 1, draw(st.sampled_from([1, 2]))
    return dict(in_channels=per_group_in * groups, out_channels=per_group_out * groups,
                kernel_size=size, stride=draw(st.sampled_from([1, 2])),
                padding=draw(st.integers(0, size // 2 + 1)), dilation=draw(st.sampled_from([1, 2])),
                groups=groups, bias=draw(st.booleans()),
                padding_mode=draw(st.sampled_from(['zeros', 'zeros', 'reflect', 'circular'])))


@settings(max_examples=40, deadline=None)
@given(shape=conv_shapes(), seed=st.integers(0, 2**16))
def test_unsqueeze_then_reparameterize_is_the_conv_float64(shape, seed):
    """Any conv shape (depthwise, grouped, strided, dilated, biased, padding
    modes): the OREPA layer computes what the conv computes, and squeezes back
    to its state dict; random branch scales too."""
    torch.manual_seed(seed)
    if shape['padding_mode'] != 'zeros':
        shape['padding'] = min(shape['padding'], 1)
    conv = nn.Conv2d(**shape).double()
    model = unsqueeze(nn.Sequential(conv))
    x = torch.randn(2, shape['in_channels'], 19, 17, dtype=torch.float64)
    assert isinstance(model[0], ReparamConv2d)
    assert_close_to_scale(model(x), conv(x), rel=EXACT_FLOAT64)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('scales'):
                param.mul_(1 + torch.rand_like(param))
    squeezed = reparameterize(model)[0]
    assert type(squeezed) is nn.Conv2d and squeezed.padding_mode == conv.padding_mode
    assert set(squeezed.state_dict()) == set(conv.state_dict())
    assert_close_to_scale(squeezed(x), model(x), rel=EXACT_FLOAT64)


def test_reparameterize_unsqueeze_returns_the_weights_of_the_model():
    """Without training, squeezing gives back the given model's own values."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                          nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 1)).double()
    back = reparameterize(unsqueeze(model)).state_dict()
    assert back.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert_close_to_scale(back[key].double(), value.double(), rel=EXACT_FLOAT64)


def test_a_layer_loads_a_stock_conv_state_dict_by_every_loader(tmp_path):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=True).double()
    layer = build_orepa_conv(8, 16, 3, padding=1, bias=True).double()
    random_branch = layer.branches['avg'].weight.detach().clone()
    layer.load_state_dict(conv.state_dict(), strict=True)
    kernel, bias = layer.squeezed_kernel()
    assert_close_to_scale(kernel, conv.weight, rel=EXACT_FLOAT64)
    assert_close_to_scale(bias, conv.bias, rel=EXACT_FLOAT64)
    # One branch is solved; the others keep their diverse random starts.
    assert torch.equal(layer.branches['avg'].weight, random_branch)
    # mmengine's loader (Pretrained init, load_from) goes through the same path.
    path = str(tmp_path / 'conv.pth')
    torch.save(dict(state_dict={f'0.{k}': v for k, v in conv.state_dict().items()}), path)
    model = nn.Sequential(build_orepa_conv(8, 16, 3, padding=1, bias=True).double())
    load_checkpoint(model, path, strict=False)
    assert_close_to_scale(model[0].squeezed_kernel()[0], conv.weight, rel=EXACT_FLOAT64)


def test_a_load_that_gives_a_layer_neither_form_names_it(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), build_orepa_conv(8, 8, 3)).eval()
    with pytest.raises(ValueError, match=r"re-param layer '1' \(OREPAConv2d\).*1\.weight"):
        model.load_state_dict({'0.weight': torch.randn(8, 3, 3, 3), '0.bias': torch.zeros(8)},
                              strict=False)
    # Some but not all of its own tensors: refused too, the missing ones named.
    partial = {k: v for k, v in model.state_dict().items() if 'origin' not in k}
    with pytest.raises(ValueError, match=r'1\.branches\.origin\.weight'):
        model.load_state_dict(partial, strict=False)
    wrong = {'0.weight': torch.randn(8, 3, 3, 3), '0.bias': torch.zeros(8),
             '1.weight': torch.randn(8, 8, 5, 5)}
    with pytest.raises(ValueError, match=r'1\.weight has shape \(8, 8, 5, 5\)'):
        model.load_state_dict(wrong, strict=False)


def _regnet(**kwargs):
    return dict(type='RegNet', arch='regnetx_400mf', **kwargs)


@pytest.mark.parametrize('dtype,bound', [(torch.float32, START_FLOAT32),
                                         (torch.float64, EXACT_FLOAT64)])
def test_regnet_with_orepa_conv_cfg_starts_from_a_stock_checkpoint(dtype, bound):
    """mmdet's RegNet with conv_cfg=dict(type='OREPA') and init_cfg=Pretrained
    on a stock RegNet checkpoint (random weights and BatchNorm statistics)
    starts as exactly that network, and squeezes back into it."""
    result = check_backbone(_regnet(), 'conv_cfg', 'mmdet', size=(32, 32), dtype=dtype)
    print(f'RegNetX-400MF {dtype}: start {result.start_error:.1e}, '
          f'squeeze {result.squeeze_error:.1e}')
    assert result.converted == result.convs
    assert result.start_error <= bound
    assert result.squeeze_error <= (1e-4 if dtype == torch.float32 else EXACT_FLOAT64)


def _stock_checkpoint(tmp_path, prefix=''):
    with DefaultScope.overwrite_default_scope('mmdet'):
        stock = MODELS.build(_regnet())
    path = str(tmp_path / 'stock.pth')
    state = {prefix + k: v for k, v in stock.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(3, 4)
    torch.save(dict(state_dict=state), path)
    return stock, path


def test_pretrained_with_a_prefix_and_a_head_loads(tmp_path):
    stock, path = _stock_checkpoint(tmp_path, prefix='backbone.')
    init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(_regnet(conv_cfg=dict(type='OREPA'), init_cfg=init_cfg))
    model.init_weights()
    model.eval()
    stock.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_close_to_scale(model(x)[-1], stock(x)[-1], rel=START_FLOAT32)


def test_pretrained_that_fits_no_layer_is_an_error_naming_the_layers(tmp_path):
    """The checkpoint's keys carry a prefix the config does not strip: mmengine
    alone would warn and start every layer at random."""
    _, path = _stock_checkpoint(tmp_path, prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(_regnet(conv_cfg=dict(type='OREPA'),
                                     init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(ValueError, match=r"re-param layer 'conv1' \(OREPAConv2d\) gets neither"):
        model.init_weights()


def _efficientnet(**kwargs):
    return dict(type='EfficientNet', arch='b0', out_indices=(6, ), **kwargs)


def test_efficientnet_keeps_its_same_padding_and_deploys_as_the_stock_model():
    """mmpretrain's EfficientNet pads like TensorFlow (Conv2dAdaptivePadding).
    With stock_conv_cfg the OREPA layers pad the same way and squeeze into the
    stock EfficientNet, its own conv type, exactly."""
    cfg = orepa_config(_efficientnet(), 'conv_cfg', 'mmpretrain')
    assert cfg['conv_cfg'] == dict(type='OREPA',
                                   stock_conv_cfg=dict(type='Conv2dAdaptivePadding'))
    result = check_backbone(_efficientnet(), 'conv_cfg', 'mmpretrain', size=(33, 47),
                            dtype=torch.float64)
    assert result.start_error <= EXACT_FLOAT64 and result.squeeze_error <= EXACT_FLOAT64
    config = Config(dict(default_scope='mmpretrain', model=dict(backbone=cfg)))
    stock = stock_backbone_config(config)
    assert stock['conv_cfg'] == dict(type='Conv2dAdaptivePadding')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    assert type(reparameterize(model).layers[0].conv).__name__ == 'Conv2dAdaptivePadding'


def test_efficientnet_padding_matters_at_this_input():
    """The check above has teeth: zero-padded convs compute something else here."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        same = MODELS.build(_efficientnet())
        zeros = MODELS.build(_efficientnet(conv_cfg=None))
    zeros.load_state_dict(same.state_dict(), strict=True)
    same.eval()
    zeros.eval()
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        difference = (same(x)[0] - zeros(x)[0]).abs().max() / same(x)[0].abs().max()
    assert difference > 1e-2


def test_conv_cfg_without_stock_conv_deploys_the_network_that_was_trained():
    config = Config(dict(default_scope='mmpretrain', model=dict(
        backbone=_efficientnet(conv_cfg=dict(type='OREPA')))))
    assert is_reparam_config(config)
    assert deploy_config(config).model.backbone.conv_cfg is None


def test_convnext_through_the_wrapper_starts_from_stock_and_deploys_as_convnext():
    """ConvNeXt has no conv_cfg: OREPABackbone reaches its depthwise 7x7 convs."""
    stock = dict(type='ConvNeXt', arch='atto')
    result = check_backbone(stock, 'wrapper', 'mmpretrain', size=(32, 32))
    # 12 depthwise 7x7; the 4x4 stem and three 2x2 downsampling convs stay plain.
    assert (result.converted, result.convs) == (12, 16)
    assert result.start_error <= START_FLOAT32 and result.squeeze_error <= 1e-4
    wrapped = Config(dict(default_scope='mmpretrain', model=dict(
        backbone=dict(type='OREPABackbone', backbone=stock))))
    assert is_reparam_config(wrapped)
    assert deploy_config(wrapped).model.backbone == stock
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert type(MODELS.build(wrapped.model.backbone)).__name__ == 'ConvNeXt'


def _torchvision_mobilenet():
    import torchvision
    return torchvision.models.mobilenet_v3_small()


def _timm_same_padding():
    import timm
    return timm.create_model('tf_mobilenetv3_small_minimal_100', pretrained=False)


@pytest.mark.parametrize('build', [_torchvision_mobilenet, _timm_same_padding],
                         ids=['torchvision-mobilenet_v3_small', 'timm-tf_mobilenetv3-same'])
def test_timm_and_torchvision_models_round_trip_float64(build):
    result = check_model(build, size=(35, 29), dtype=torch.float64)
    assert result.converted > 0.8 * result.convs
    assert result.start_error <= EXACT_FLOAT64 and result.squeeze_error <= EXACT_FLOAT64


def test_timm_same_padding_is_kept():
    model = unsqueeze(_timm_same_padding())
    layers = [m for m in model.modules() if isinstance(m, ReparamConv2d)]
    assert any(type(layer.stock_conv).__name__ == 'Conv2dSame' for layer in layers)
    squeezed = reparameterize(model)
    assert any(type(m).__name__ == 'Conv2dSame' for m in squeezed.modules())


def test_unsqueeze_switches_and_log():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8),
                          nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 2), nn.Conv2d(8, 8, 1, groups=2))
    with mock.patch('mmorepa.layers.unsqueeze.print_log') as print_log:
        converted = unsqueeze(model, convs=('kxk', '1x1'), exclude=(r'^2$', ))
    kinds = [type(m).__name__ for m in converted]
    assert kinds == ['OREPAConv2d', 'Conv2d', 'Conv2d', 'Conv2d', 'Conv2d']
    log = print_log.call_args.args[0]
    assert log.startswith('unsqueeze: 1 conv(s) converted to orepa, 4 left plain')
    assert 'even kernel 2x2 (OREPA kernels are odd): 3' in log and 'excluded: 2' in log
    assert 'depthwise (not in convs): 1' in log and 'grouped (not in convs): 4' in log
    # Frozen convs stay frozen; a second walk changes nothing.
    frozen = nn.Sequential(nn.Conv2d(3, 8, 3).requires_grad_(False))
    once = unsqueeze(frozen)
    assert not any(p.requires_grad for p in once.parameters())
    assert isinstance(unsqueeze(once)[0], OREPAConv2d)


@pytest.mark.parametrize('kwargs,error', [
    (dict(reparam='dbb'), ValueError), (dict(convs='kxk'), TypeError),
    (dict(convs=('pointwise', )), ValueError)])
def test_unsqueeze_refuses_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        unsqueeze(nn.Conv2d(3, 3, 3), **kwargs)


@pytest.mark.parametrize('config,stock_type', [
    ('configs/imagenet/orepa-mobilenet-v2_8xb32_in1k.py', 'MobileNetV2'),
    ('configs/imagenet/orepa-convnext-tiny_32xb128_in1k.py', 'ConvNeXt')])
def test_tools_export_both_routes_to_the_stock_backbone(config, stock_type, tmp_path):
    """tools/reparameterize.py and tools/export_onnx.py on a conv_cfg config and
    on a wrapper config: the deploy config is the stock backbone, the deploy
    checkpoint loads into it strictly (the tools check), and ONNX matches."""
    from tools import export_onnx, reparameterize as reparameterize_tool
    torch.manual_seed(0)
    model = build_model(Config.fromfile(config))
    with torch.no_grad():  # every branch in the kernel, activations kept in range
        for name, param in model.named_parameters():
            if name.endswith('scales'):
                param.mul_(1 + 0.1 * torch.rand_like(param))
    trained = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), trained)
    out = tmp_path / 'out'
    assert reparameterize_tool.main([config, trained, str(out), '--shape', '32', '32']) == 0
    deploy_cfg = Config.fromfile(str(out / 'deploy_config.py'))
    assert deploy_cfg.model.backbone.type == stock_type and 'custom_imports' not in deploy_cfg
    assert [h['type'] for h in deploy_cfg.get('custom_hooks', [])] in ([], ['EMAHook'])
    assert export_onnx.main([str(out / 'deploy_config.py'), str(out / 'epoch_1_deploy.pth'),
                             str(tmp_path / 'model.onnx'), '--shape', '32', '32',
                             '--verify']) == 0
