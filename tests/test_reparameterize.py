"""The model walk and the eval-time kernel cache."""
import pytest
import torch
from torch import nn

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import reparameterize
from mmorepa.layers import DBBConv2d, OREPA1x1Conv2d, OREPAConv2d, OREPALargeConv2d


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
        '1.num_batches_tracked', '3.0.weight', '3.0.bias', '3.1.weight', '4.weight', '5.weight', '5.bias', '5.running_mean',
        '5.running_var', '5.num_batches_tracked']
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


def count_kernel_calls(layer):
    calls = []
    original = layer.squeezed_kernel

    def counting():
        calls.append(1)
        return original()

    layer.squeezed_kernel = counting
    return calls


def test_eval_cache_computes_once_and_follows_every_change():
    layer = OREPAConv2d(4, 4, 3, padding=1)
    calls = count_kernel_calls(layer)
    x = torch.randn(1, 4, 6, 6)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)

    def fresh():
        return nn.functional.conv2d(x, layer.branches.kernel(), padding=1)

    layer.eval()
    with torch.no_grad():
        first = layer(x)
        layer(x)
        assert len(calls) == 1
        assert torch.equal(first, fresh())
    # Grad enabled in eval: no cache (gradients must flow).
    layer(x).sum().backward()
    assert len(calls) == 2
    # An optimizer step changes the parameters in place.
    optimizer.step()
    with torch.no_grad():
        after_step = layer(x)
        assert len(calls) == 3 and torch.equal(after_step, fresh())
        assert not torch.equal(after_step, first)
        # load_state_dict copies into the same tensors.
        state = {k: torch.randn_like(v) for k, v in layer.state_dict().items()}
        layer.load_state_dict(state)
        assert torch.equal(layer(x), fresh()) and len(calls) == 4
        # train() drops the cache; a training forward always recomputes.
        layer.train()
        layer(x)
        layer.eval()
        layer(x)
        assert len(calls) == 6
        layer(x)
        assert len(calls) == 6
        layer.double()
        assert torch.equal(layer(x.double()), nn.functional.conv2d(
            x.double(), layer.branches.kernel(), padding=1))
