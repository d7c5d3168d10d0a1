"""OREPAResNet / OREPARepVGG: exact squeezing into each library's stock backbone."""
import pytest
import torch
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.models.backbones import ResNeXt as MMDetResNeXt
from mmpretrain.models.backbones import RepVGG as MMPretrainRepVGG
from mmpretrain.models.backbones import ResNet as MMPretrainResNet
from mmseg.models.backbones import ResNet as MMSegResNet
from mmseg.models.backbones import ResNetV1c as MMSegResNetV1c
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import OREPARepVGG, OREPAResNet, OREPAResNetV1c, reparameterize
from mmorepa.layers import DBBConv2d, ReparamConv2d

STOCK_RESNETS = {
    'mmpretrain': lambda **kw: MMPretrainResNet(out_indices=(0, 1, 2, 3), **kw),
    'mmdet': MMDetResNet,
    'mmseg': MMSegResNet,
}


def squeeze_and_compare(model, stock, x, dtype=torch.float64):
    """Eval outputs of ``model`` equal its squeezed form and ``stock`` loaded with it."""
    model = randomize_norms(randomize_scales(model)).to(dtype).eval()
    x = x.to(dtype)
    with torch.no_grad():
        expected = model(x)
        squeezed = reparameterize(model)
        assert not any(isinstance(m, (ReparamConv2d, DBBConv2d)) for m in squeezed.modules())
        stock.to(dtype).eval()  # the stock backbones' train() returns None
        stock.load_state_dict(squeezed.state_dict(), strict=True)
        for out_model, out_squeezed, out_stock in zip(expected, squeezed(x), stock(x)):
            assert_close_to_scale(out_squeezed, out_model)
            assert_close_to_scale(out_stock, out_model)


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
@pytest.mark.parametrize('reparam', ['orepa', 'dbb', None])
def test_resnet_depths_and_modes_squeeze_into_stock(depth, reparam):
    torch.manual_seed(depth)
    model = OREPAResNet(depth, reparam=reparam)
    squeeze_and_compare(model, MMSegResNet(depth), torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize('library', sorted(STOCK_RESNETS))
@pytest.mark.parametrize('depth', [18, 50])
def test_squeezed_resnet_loads_into_every_library(library, depth):
    model = OREPAResNet(depth, out_indices=(0, 1, 2, 3))
    squeeze_and_compare(model, STOCK_RESNETS[library](depth=depth), torch.randn(2, 3, 48, 48))


def test_resnext_and_wide_variants():
    resnext = OREPAResNet(50, groups=32, width_per_group=4, base_channels=64)
    stock = MMDetResNeXt(depth=50, groups=32, base_width=4)
    squeeze_and_compare(resnext, stock, torch.randn(1, 3, 48, 48))
    assert OREPAResNet(50, groups=32, base_width=4).layer1[0].conv2.groups == 32
    wide = OREPAResNet(18, stem_channels=128, base_channels=128)
    squeeze_and_compare(wide, MMSegResNet(18, stem_channels=128, base_channels=128),
                        torch.randn(1, 3, 32, 32))


def test_segmentation_resnet_v1c_with_dilations():
    settings = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True,
                    multi_grid=(1, 2, 4))
    model = OREPAResNet(50, deep_stem=True, **settings)
    stock = MMSegResNetV1c(depth=50, **settings)
    for ours, theirs in zip(model.layer4, stock.layer4):
        assert ours.conv2.dilation == theirs.conv2.dilation
        assert ours.conv2.padding == theirs.conv2.padding
    assert model.layer3[0].conv2.dilation == (1, 1)  # contract_dilation
    squeeze_and_compare(model, stock, torch.randn(1, 3, 48, 48))


def test_published_layout():
    basic = OREPAResNet(18)
    assert type(basic.conv1).__name__ == 'OREPALargeConv2d'
    assert type(basic.layer1[0].conv1).__name__ == 'OREPAConv2d'
    assert type(basic.layer2[0].downsample[0]) is nn.Conv2d  # plain shortcut
    bottleneck = OREPAResNet(50)
    block = bottleneck.layer2[0]
    assert [type(m).__name__ for m in (block.conv1, block.conv2, block.conv3,
                                       block.downsample[0])] == [
        'OREPA1x1Conv2d', 'OREPAConv2d', 'OREPA1x1Conv2d', 'OREPA1x1Conv2d']
    ablation = OREPAResNet(18, linear_stem=False, rep_1x1=True, branches=('origin', 'avg'),
                           scaling='scalar')
    assert type(ablation.conv1).__name__ == 'OREPAConv2d'
    assert type(ablation.layer2[0].downsample[0]).__name__ == 'OREPA1x1Conv2d'
    assert list(ablation.layer1[0].conv1.branches.keys()) == ['origin', 'avg']
    dbb = OREPAResNet(50, reparam='dbb')
    assert type(dbb.layer1[0].conv2) is DBBConv2d and type(dbb.layer1[0].conv1) is nn.Conv2d
    deployed = OREPAResNet(50, deploy=True)
    assert deployed.state_dict().keys() == MMSegResNet(50).state_dict().keys()


def test_frozen_stages_and_norm_eval_follow_the_stock_resnet():
    model = OREPAResNet(50, frozen_stages=2, norm_eval=True).train()
    stock = MMSegResNet(50, frozen_stages=2, norm_eval=True)
    stock.train()
    for module in (model, stock):
        assert all(not m.training for m in module.modules() if isinstance(m, _BatchNorm))
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.split('.')[0] in ('conv1', 'bn1', 'layer1', 'layer2')
                          for n in frozen)
    # Every branch parameter of the frozen stages is frozen, none after.
    assert all(not p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    dbb = OREPAResNet(18, reparam='dbb', norm_eval=True).train()
    assert all(not m.training for m in dbb.modules() if isinstance(m, _BatchNorm))


def test_with_cp_gives_the_same_outputs_and_gradients():
    # float64: the checkpointed blocks' first pass (no gradient) convolves with
    # the cached kernel, the recomputation may run branches on the feature map
    # (placement 'auto'); in float32 their rounding differs, and BatchNorm over
    # two 1x1 maps in layer4 amplifies it.
    torch.manual_seed(0)
    plain = OREPAResNet(18, out_indices=(3, )).double()
    checkpointed = OREPAResNet(18, out_indices=(3, ), with_cp=True).double()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    grads = []
    for model in (plain, checkpointed):
        out = model(x)[0]
        out.sum().backward()
        grads.append(model.layer1[0].conv1.branches['dws'].pointwise.grad.clone())
    assert_close_to_scale(grads[1], grads[0], rel=1e-5)


def test_out_indices_and_shapes_match_the_stock_resnet():
    x = torch.randn(1, 3, 64, 64)
    for out_indices in [(0, ), (1, 3), (0, 1, 2, 3)]:
        ours = OREPAResNet(18, out_indices=out_indices).eval()(x)
        stock_model = MMSegResNet(18, out_indices=out_indices)
        stock_model.eval()
        stock = stock_model(x)
        assert [o.shape for o in ours] == [o.shape for o in stock]


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(depth=20), ValueError, 'depth'),
    (dict(depth=18, reparam='acnet'), ValueError, 'reparam'),
    (dict(depth=18, out_indices=(4, )), ValueError, 'out_indices'),
    (dict(depth=18, strides=(1, 2, 2)), ValueError, 'strides'),
    (dict(depth=18, num_stages=5), ValueError, 'num_stages'),
    (dict(depth=18, groups=32), ValueError, 'groups'),
    (dict(depth=18, conv_cfg=dict(type='Conv2d')), ValueError, 'conv_cfg'),
])
def test_resnet_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        OREPAResNet(**kwargs)


@pytest.mark.parametrize('arch', ['A0', 'A1', 'A2'])
@pytest.mark.parametrize('reparam', ['orepa', 'repvgg'])
def test_repvgg_squeezes_into_stock_deploy_repvgg(arch, reparam):
    torch.manual_seed(0)
    model = OREPARepVGG(arch, reparam=reparam, out_indices=(0, 1, 2, 3))
    stock = MMPretrainRepVGG(arch, deploy=True, out_indices=(0, 1, 2, 3))
    squeeze_and_compare(model, stock, torch.randn(1, 3, 32, 32))


def test_repvgg_layout_and_errors():
    block = OREPARepVGG('A0').stage_1[0]
    assert list(block.branch_3x3.conv.branches.keys()) == ['origin', 'avg', 'prior', '1x1_kxk',
                                                           'dws']
    assert type(block.branch_1x1.conv) is nn.Conv2d
    assert type(OREPARepVGG('A0', reparam='repvgg').stage_1[0].branch_3x3.conv) is nn.Conv2d
    assert OREPARepVGG('A0', deploy=True).state_dict().keys() == MMPretrainRepVGG(
        'A0', deploy=True).state_dict().keys()
    with pytest.raises(ValueError, match='reparam'):
        OREPARepVGG('A0', reparam='dbb')
    with pytest.raises(ValueError, match='arch'):
        OREPARepVGG('Z9')


def test_switch_to_deploy_gives_what_deploy_true_builds():
    """mmpretrain's reparameterize tool calls switch_to_deploy(); the config with
    model.backbone.deploy=True must load the result strictly."""
    for kwargs in (dict(depth=50), dict(depth=18, reparam='dbb'),
                   dict(depth=50, groups=32, width_per_group=4)):
        model = randomize_norms(OREPAResNet(**kwargs)).eval()
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            expected = model(x)
            model.switch_to_deploy()
            assert model.deploy and not any(isinstance(m, ReparamConv2d) for m in model.modules())
            built = OREPAResNet(**kwargs, deploy=True)
            built.load_state_dict(model.state_dict(), strict=True)
            built.eval()
            for ours, theirs in zip(expected, built(x)):
                assert_close_to_scale(theirs, ours)
    vgg = OREPARepVGG('A0')
    vgg.switch_to_deploy()
    OREPARepVGG('A0', deploy=True).load_state_dict(vgg.state_dict(), strict=True)


@pytest.mark.parametrize('cfg, scope, stock', [
    (dict(type='OREPAResNet', depth=50, reparam='dbb'), 'mmdet', dict(type='ResNet', depth=50)),
    (dict(type='OREPAResNet', depth=50, groups=32, width_per_group=4), 'mmdet',
     dict(type='ResNeXt', depth=50, groups=32, base_width=4)),
    (dict(type='OREPAResNet', depth=50, groups=32, base_width=4), 'mmpretrain',
     dict(type='ResNeXt', depth=50, groups=32, width_per_group=4)),
    (dict(type='OREPAResNetV1c', depth=50), 'mmseg', dict(type='ResNetV1c', depth=50)),
    (dict(type='OREPARepVGG', arch='A0', reparam='orepa'), 'mmpretrain',
     dict(type='RepVGG', arch='A0', deploy=True)),
    (dict(type='OREPAResNet', depth=18, compile_kernels=True, kernels_under_autocast=False),
     'mmdet', dict(type='ResNet', depth=18)),
    (dict(type='OREPARepVGG', arch='A0', compile_kernels=True, kernels_under_autocast=False),
     'mmpretrain', dict(type='RepVGG', arch='A0', deploy=True)),
])
def test_each_backbone_names_its_stock_counterpart(cfg, scope, stock):
    from mmengine.registry import MODELS
    config = MODELS.get(cfg['type']).stock_config(cfg, scope)
    assert {k: config[k] for k in stock} == stock
    assert not set(config) & {'reparam', 'branches', 'scaling', 'rep_1x1', 'linear_stem',
                              'compile_kernels', 'kernels_under_autocast'}


def test_mmpretrain_has_no_deep_stem_of_mmseg_layout():
    with pytest.raises(ValueError, match='deep stem'):
        OREPAResNetV1c.stock_config(dict(type='OREPAResNetV1c', depth=50), 'mmpretrain')
