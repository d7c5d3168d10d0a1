"""Re-param backbones start from stock checkpoints exactly, or refuse them by name.

Float64 checks: the re-param backbone and the stock one give the same outputs
to 1e-9 of scale (eval mode; the only differences are summation orders).
Float32 through ``init_cfg=Pretrained``: 1e-5 of scale.
"""
import pytest
import torch
from mmengine.logging import MMLogger
from mmdet.models.backbones import ResNet as MMDetResNet
from mmdet.models.backbones import ResNeXt as MMDetResNeXt
from mmpretrain.models.backbones import RepVGG
from mmseg.models.backbones import ResNetV1c
from torch import nn

from helpers import assert_close_to_scale, randomize_norms
from mmorepa import OREPARepVGG, OREPAResNet, OREPAResNetV1c
from mmorepa.backbones import load_state_dict_any_form
from mmorepa.layers import ReparamConv2d


def stock_state(stock):
    """A stock backbone with Kaiming weights and random norm statistics."""
    torch.manual_seed(1)
    stock.init_weights()
    randomize_norms(stock)
    with torch.no_grad():
        for module in stock.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.abs_().add_(0.5)
    return stock


def outputs(model, x):
    model.eval()  # the stock backbones' train() returns None
    with torch.no_grad():
        return model(x)


CASES = {
    'resnet50-torchvision': (lambda: MMDetResNet(50), lambda: OREPAResNet(50)),
    'resnext50': (lambda: MMDetResNeXt(depth=50, groups=32, base_width=4),
                  lambda: OREPAResNet(50, groups=32, base_width=4)),
    'resnet50-v1c': (lambda: ResNetV1c(depth=50), lambda: OREPAResNetV1c(50)),
    'resnet18-dbb': (lambda: MMDetResNet(18), lambda: OREPAResNet(18, reparam='dbb')),
    'repvgg-a0': (lambda: RepVGG('A0', out_indices=(0, 1, 2, 3)),
                  lambda: OREPARepVGG('A0', out_indices=(0, 1, 2, 3))),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_stock_weights_give_the_stock_network(case):
    build_stock, build_ours = CASES[case]
    stock = stock_state(build_stock()).double()
    state = stock.state_dict()
    if case.endswith('torchvision'):  # as torchvision://resnet50 loads it
        state = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
        state.update({'fc.weight': torch.zeros(1000, 2048), 'fc.bias': torch.zeros(1000)})
    torch.manual_seed(2)
    ours = build_ours().double()
    random_starts = {name: p.clone() for name, p in ours.named_parameters()
                     if '.origin.' not in name and 'kxk.weight' not in name}
    assert load_state_dict_any_form(ours, state) == 'stock form'
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    for mine, theirs in zip(outputs(ours, x), outputs(stock, x)):
        assert_close_to_scale(mine, theirs, rel=1e-9)
    if case != 'resnet18-dbb':  # the other branches keep their random starts
        kept = [name for name, p in ours.named_parameters()
                if name in random_starts and torch.equal(p, random_starts[name])]
        branch_params = [name for name in random_starts if '.branches.' in name
                         or '.generators.' in name]
        assert branch_params and set(branch_params) <= set(kept)


def test_pretrained_init_cfg_in_float32(tmp_path):
    stock = stock_state(MMDetResNet(50))
    path = str(tmp_path / 'resnet50.pth')
    torch.save({f'backbone.{k}': v for k, v in stock.state_dict().items()}, path)
    ours = OREPAResNet(50, init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    log = tmp_path / 'init.log'
    MMLogger.get_instance('stock_weights_test', log_file=str(log))  # becomes 'current'
    ours.init_weights()
    assert 'condition number' in log.read_text() and '(stock form)' in log.read_text()
    x = torch.randn(1, 3, 64, 64)
    for mine, theirs in zip(outputs(ours, x), outputs(stock, x)):
        assert_close_to_scale(mine, theirs, rel=1e-5)
    assert any(isinstance(m, ReparamConv2d) for m in ours.modules())


def test_train_form_checkpoints_load_as_they_are():
    torch.manual_seed(0)
    trained = randomize_norms(OREPAResNet(18))
    ours = OREPAResNet(18)
    assert load_state_dict_any_form(ours, trained.state_dict()) == 'train form'
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
                                                 trained.state_dict().values()))


def test_checkpoints_of_neither_form_are_refused_by_name():
    ours = OREPAResNet(50)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    resnet18 = MMDetResNet(18).state_dict()
    with pytest.raises(ValueError, match=r'neither the train form nor the stock form.*'
                       r'misses \d+ key\(s\): .*layer1\.0\.conv3\.weight'):
        load_state_dict_any_form(ours, resnet18)
    prefixed = {f'backbone.{k}': v for k, v in MMDetResNet(50).state_dict().items()}
    with pytest.raises(ValueError, match="give prefix='backbone.'"):
        load_state_dict_any_form(ours, prefixed)
    wide = MMDetResNet(50, base_channels=32).state_dict()
    with pytest.raises(ValueError, match=r'wrong shape .*layer1\.0\.bn1\.weight'):
        load_state_dict_any_form(ours, wide)
    assert all(torch.equal(v, before[k]) for k, v in ours.state_dict().items())
