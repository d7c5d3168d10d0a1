"""The squeeze protocol, the model walk, and the kernel cache.

Tolerances: squeezed vs unsqueezed outputs within 1e-4 of scale (float32); a
cached kernel must equal a freshly generated one exactly (``torch.equal``).
"""
import pytest
import torch
import torchvision
from timm.utils.model import reparameterize_model as timm_reparameterize
from torch import nn

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import OREPAResNet, reparameterize
from mmorepa.layers import (DBBConv2d, KernelCache, OREPA1x1Conv2d, OREPAConv2d,
                            OREPALargeConv2d, ReparamConv2d, Squeezable,
                            set_forward_policy)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(
        OREPAConv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(DBBConv2d(8, 8, 3, groups=2), OREPALargeConv2d(8, 8, 5, padding=2)),
        OREPA1x1Conv2d(8, 4), nn.BatchNorm2d(4))


def test_walk_replaces_every_reparam_module_and_is_idempotent():
    model = randomize_norms(randomize_scales(small_model())).eval()
    x = torch.randn(2, 3, 12, 12)
    squeezed = reparameterize(model)
    kinds = {type(m).__name__ for m in squeezed.modules()}
    assert kinds == {'Sequential', 'Conv2d', 'BatchNorm2d', 'ReLU'}
    assert list(squeezed.state_dict()) == [
        '0.weight', '1.weight', '1.bias', '1.running_mean', '1.running_var',
        '1.num_batches_tracked', '3.0.weight', '3.0.bias', '3.1.weight', '4.weight',
        '5.weight', '5.bias', '5.running_mean', '5.running_var', '5.num_batches_tracked']
    with torch.no_grad():
        assert_close_to_scale(squeezed(x), model(x))
        again = reparameterize(squeezed)
        assert again.state_dict().keys() == squeezed.state_dict().keys()
        assert_close_to_scale(again(x), squeezed(x), rel=0)
    # The trained model is untouched unless asked.
    assert isinstance(model[0], OREPAConv2d)
    inplace = reparameterize(model, inplace=True)
    assert inplace is model and type(model[0]) is nn.Conv2d


def test_walk_rejects_non_modules():
    with pytest.raises(TypeError, match='model'):
        reparameterize({'weight': torch.zeros(1)})


def test_walk_finds_modules_by_type_not_by_attribute_name():
    """SqueezeNet's Fire blocks have a child called ``squeeze``: nothing to do for
    the walk, until one of their convs is an OREPA layer."""
    model = torchvision.models.squeezenet1_0(num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        untouched = reparameterize(model)
        assert untouched.state_dict().keys() == model.state_dict().keys()
        assert torch.equal(untouched(x), expected)
        fire = model.features[3]
        fire.expand3x3 = randomize_scales(OREPAConv2d(16, 64, 3, padding=1))
        expected = model(x)
        squeezed = reparameterize(model)
        assert type(squeezed.features[3].expand3x3) is nn.Conv2d
        assert_close_to_scale(squeezed(x), expected)
    assert issubclass(ReparamConv2d, Squeezable) and issubclass(OREPAResNet, Squeezable)
    assert not isinstance(fire.squeeze, Squeezable)


class Classifier(nn.Module):

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone(x)


@pytest.mark.parametrize('backbone', [
    lambda: OREPAResNet(18, base_channels=8, stem_channels=8),
    lambda: OREPAResNet(18, base_channels=8, stem_channels=8, reparam='dbb'),
    lambda: OREPAResNet(50, base_channels=4, stem_channels=8),
], ids=['orepa-r18', 'dbb-r18', 'orepa-r50'])
def test_timm_walk_finds_the_same_squeeze(backbone):
    """timm's ``reparameterize_model`` (``fuse()`` / ``switch_to_deploy()``) gives
    the model ``mmorepa.reparameterize`` gives. (Not for RepVGG: mmpretrain's
    ``RepVGGBlock.reparameterize()`` only returns the fused weights, and timm's
    walk calls it on stock and OREPA-VGG blocks alike.)"""
    torch.manual_seed(0)
    model = Classifier(randomize_norms(randomize_scales(backbone()))).eval()
    x = torch.randn(2, 3, 64, 64)
    ours, theirs = reparameterize(model), timm_reparameterize(model)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert not any(isinstance(m, ReparamConv2d) for m in theirs.modules())
    with torch.no_grad():
        for mine, timms in zip(ours(x), theirs(x)):
            assert torch.equal(mine, timms)
        assert_close_to_scale(theirs(x)[-1], model(x)[-1])


def count_kernel_calls(layer):
    calls = []
    original = layer.generate_kernel

    def counting(*args):
        calls.append(1)
        return original(*args)

    layer.generate_kernel = counting
    return calls


@pytest.fixture
def cached_layer():
    torch.manual_seed(0)
    layer = randomize_scales(OREPAConv2d(4, 4, 3, padding=1)).eval()
    return layer, count_kernel_calls(layer), torch.randn(1, 4, 6, 6)


def fresh(layer, x):
    """The layer's output with a kernel generated now, bypassing the cache."""
    kernel = layer.branches.kernel().to(x.dtype)
    return nn.functional.conv2d(x, kernel, padding=1)


def test_cache_computes_once_and_follows_optimizers_and_loading(cached_layer):
    layer, calls, x = cached_layer
    with torch.no_grad():
        first = layer(x)
        layer(x)
        assert len(calls) == 1 and torch.equal(first, fresh(layer, x))
    # Gradients must flow: no cache while they are wanted.
    layer(x).sum().backward()
    layer(x).sum().backward()
    assert len(calls) == 3
    for optimizer in (torch.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9),
                      torch.optim.SGD(layer.parameters(), lr=0.5, foreach=True),
                      torch.optim.SGD(layer.parameters(), lr=0.5, fused=True),
                      torch.optim.Adam(layer.parameters(), lr=0.5, fused=True)):
        with torch.no_grad():
            layer(x)
            before = len(calls)
            layer(x)
            assert len(calls) == before  # cached
        optimizer.step()  # fused optimizers do not bump version counters
        with torch.no_grad():
            assert torch.equal(layer(x), fresh(layer, x)) and len(calls) == before + 1
    with torch.no_grad():
        layer.load_state_dict({k: torch.randn_like(v) for k, v in layer.state_dict().items()})
        assert torch.equal(layer(x), fresh(layer, x))


def test_cache_follows_writes_through_data(cached_layer):
    """A new storage (``param.data = other``) is seen at once; writes through a
    ``.data`` alias bump no version counter and are seen when the mode is set,
    as mmengine's loops set it around its EMA swaps (the cache reads no values,
    tests/test_fake_cuda.py)."""
    layer, calls, x = cached_layer
    weight = layer.branches['origin'].weight
    with torch.no_grad():
        layer(x)
        weight.data = torch.randn_like(weight)
        assert torch.equal(layer(x), fresh(layer, x)) and len(calls) == 2
        for write in (lambda: weight.data.copy_(torch.randn_like(weight)),
                      lambda: weight.data.mul_(2)):
            write()
            layer.eval()
            assert torch.equal(layer(x), fresh(layer, x))
    assert len(calls) == 4


def test_ema_validation_sees_the_averaged_weights(tmp_path):
    """mmengine's EMAHook swaps the averaged weights in through ``.data``
    before validation: the validation forward must use their kernels."""
    from mmengine.hooks import EMAHook
    from mmengine.model import ExponentialMovingAverage

    torch.manual_seed(0)
    model = nn.Sequential(randomize_scales(OREPAConv2d(4, 4, 3, padding=1))).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        model(x)  # a cached kernel of the trained weights
    hook = EMAHook()
    hook.src_model, hook.ema_model = model, ExponentialMovingAverage(model)
    with torch.no_grad():
        for param in hook.ema_model.module.parameters():
            param.mul_(0.5)
    runner = type('Runner', (), dict(model=model))()
    hook.before_val_epoch(runner)
    model.eval()  # mmengine's ValLoop, right after before_val_epoch
    with torch.no_grad():
        assert torch.equal(model(x), fresh(model[0], x))
        averaged = model(x)
    hook.after_val_epoch(runner)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model.eval()(x), averaged)


@pytest.mark.parametrize('under_autocast', [False, True])
def test_cache_follows_autocast_and_dtype(cached_layer, under_autocast):
    layer, calls, x = cached_layer
    set_forward_policy(layer, kernel_under_autocast=under_autocast)
    with torch.no_grad():
        float_kernel = layer.branches.kernel()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = layer(x)
            kernel = layer.branches.kernel() if under_autocast else float_kernel
            assert torch.equal(mixed, nn.functional.conv2d(x, kernel, padding=1))
        assert torch.equal(layer(x), fresh(layer, x))
        layer.double()
        assert torch.equal(layer(x.double()), fresh(layer, x.double()))
    # A kernel generated under autocast is not the float32 one.
    assert len(calls) == (3 if under_autocast else 2)


def test_cache_follows_devices():
    """Same values on another device: never the cached tensor of the first."""
    cache = KernelCache()
    values = [torch.ones(3)]
    cached = cache.get(lambda: torch.zeros(1), values)
    assert cache.get(lambda: torch.ones(1), values) is cached
    moved = cache.get(lambda: torch.ones(1, device='meta'), [torch.ones(3, device='meta')])
    assert moved.device.type == 'meta'
    cache.clear()
    assert cache.get(lambda: torch.full((1, ), 2.0), values).item() == 2.0


def test_frozen_layers_reuse_their_kernel_while_training():
    """frozen_stages: a layer whose tensors need no gradient generates its kernel
    once, even in training mode with autograd on, until something changes."""
    torch.manual_seed(0)
    backbone = OREPAResNet(18, base_channels=8, stem_channels=8, frozen_stages=1).train()
    frozen, trained = backbone.layer1[0].conv1, backbone.layer2[0].conv1
    frozen_calls, trained_calls = count_kernel_calls(frozen), count_kernel_calls(trained)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(3):
        sum(out.sum() for out in backbone(x)).backward()
    assert len(frozen_calls) == 1 and len(trained_calls) == 3
    with torch.no_grad():
        frozen.branches['avg'].weight.add_(1.0)
    backbone(x)
    assert len(frozen_calls) == 2
    backbone.train()  # a mode change drops every cache
    backbone(x)
    assert len(frozen_calls) == 3
