"""OREPA layers: squeezed kernel vs the unsqueezed branches, on many shapes."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmcv.cnn import build_conv_layer
from mmengine.model import BaseModule
from torch import nn

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import reparameterize
from mmorepa.layers import (OREPA_BRANCHES, OREPA1x1Conv2d, OREPAConv2d, OREPALargeConv2d,
                            ReparamConv2d)
from reference import orepa_layer_unsqueezed

DTYPES = st.sampled_from([torch.float32, torch.float64])


@st.composite
def conv_geometry(draw, kernel_sizes=(1, 3, 5, 7)):
    groups = draw(st.sampled_from([1, 2, 4, 8, 32]))
    per_group = draw(st.integers(1, 2) if groups == 32 else st.integers(1, 3))
    out_per_group = draw(st.integers(1, 2) if groups == 32 else st.integers(1, 3))
    k = draw(st.sampled_from(kernel_sizes))
    dilation = draw(st.sampled_from([1, 2, 4]))
    return dict(in_channels=groups * per_group, out_channels=groups * out_per_group,
                kernel_size=k, stride=draw(st.sampled_from([1, 2])),
                padding=draw(st.integers(0, dilation * (k // 2) + 1)), dilation=dilation,
                groups=groups, bias=draw(st.booleans()))


def make_input(layer, dtype, size=None):
    k, d = layer.kernel_size[0], layer.dilation[0]
    size = size or max(9, d * (k - 1) + 3)
    return torch.randn(2, layer.in_channels, size, size, dtype=dtype)


def with_norm(layer, dtype):
    model = nn.Sequential(layer, nn.BatchNorm2d(layer.out_channels))
    return randomize_norms(randomize_scales(model)).to(dtype).eval()


@given(geometry=conv_geometry(), branches=st.lists(st.sampled_from(list(OREPA_BRANCHES)),
                                                   min_size=1, max_size=6, unique=True),
       scaling=st.sampled_from(['vector', 'scalar', None]), dtype=DTYPES)
def test_orepa_conv_squeezes_exactly(geometry, branches, scaling, dtype):
    layer = OREPAConv2d(**geometry, branches=branches, scaling=scaling)
    model = with_norm(layer, dtype)
    x = make_input(layer, dtype)
    with torch.no_grad():
        unsqueezed = model[1](orepa_layer_unsqueezed(layer, x))
        assert_close_to_scale(model(x), unsqueezed)
        squeezed = reparameterize(model)
        assert type(squeezed[0]) is nn.Conv2d
        assert_close_to_scale(squeezed(x), unsqueezed)


@given(cin=st.integers(1, 12), cout=st.integers(1, 12), stride=st.sampled_from([1, 2]),
       bias=st.booleans(), scaling=st.sampled_from(['vector', 'scalar', None]), dtype=DTYPES)
def test_rep_1x1_squeezes_exactly(cin, cout, stride, bias, scaling, dtype):
    layer = OREPA1x1Conv2d(cin, cout, 1, stride, bias=bias, scaling=scaling)
    model = with_norm(layer, dtype)
    x = make_input(layer, dtype)
    with torch.no_grad():
        unsqueezed = model[1](orepa_layer_unsqueezed(layer, x))
        assert_close_to_scale(reparameterize(model)(x), unsqueezed)


@given(cin=st.integers(1, 4), cout=st.integers(1, 6), k=st.sampled_from([5, 7, 9]),
       groups=st.sampled_from([1, 2]), dtype=DTYPES)
def test_deep_stem_equals_its_3x3_generators_in_sequence(cin, cout, k, groups, dtype):
    layer = randomize_scales(OREPALargeConv2d(cin * groups, cout * groups, k, groups=groups))
    layer = layer.to(dtype)
    x = torch.randn(2, cin * groups, 2 * k + 3, 2 * k + 3, dtype=dtype)
    with torch.no_grad():
        sequential = x
        for generator in layer.generators:
            sequential = nn.functional.conv2d(sequential, generator.kernel(), groups=groups)
        assert_close_to_scale(layer(x), sequential)


@given(geometry=conv_geometry(kernel_sizes=(5, 7)), dtype=DTYPES)
def test_deep_stem_squeezes_exactly(geometry, dtype):
    geometry['groups'] = 1
    layer = OREPALargeConv2d(**{**geometry, 'in_channels': 3})
    model = with_norm(layer, dtype)
    x = make_input(layer, dtype)
    with torch.no_grad():
        assert_close_to_scale(reparameterize(model)(x), model(x))


def test_published_initial_values():
    layer = OREPAConv2d(16, 32, 3, groups=8)
    scales = dict(zip(layer.branches.keys(), layer.branches.scales[:, 0].tolist()))
    assert scales == {'origin': 0.25, 'avg': 0.25, 'prior': 0.0, '1x1_kxk': 0.5, '1x1': 1.0,
                      'dws': 0.5}
    chain = layer.branches['1x1_kxk']
    assert torch.count_nonzero(chain.delta) == 0
    assert chain.identity.shape == (32, 2, 1, 1)  # T = 2I for groups > 4
    assert torch.equal(chain.identity[:, :, 0, 0].sum(1), torch.ones(32))
    # Kaiming-uniform with a = 0: bound sqrt(6 / fan_in).
    origin = layer.branches['origin'].weight
    assert origin.abs().max() <= (6 / (2 * 9))**0.5
    assert origin.std() > 0.5 * (2 / (2 * 9))**0.5
    rep = OREPA1x1Conv2d(4, 8)
    assert rep.branches.scales[:, 0].tolist() == [1.0, 0.5]
    assert torch.equal(rep.branches['1x1_1x1'].conv1[:, :, 0, 0], torch.eye(4))
    shrink = OREPA1x1Conv2d(8, 4)
    assert torch.equal(shrink.branches['1x1_1x1'].conv2[:, :, 0, 0], torch.eye(4))


def test_parent_kaiming_init_leaves_published_init():
    parent = BaseModule(init_cfg=[dict(type='Kaiming', layer='Conv2d'),
                                  dict(type='Constant', val=1, layer='_BatchNorm')])
    parent.conv = OREPAConv2d(4, 4, 3, padding=1)
    parent.rep = OREPA1x1Conv2d(4, 8)
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    parent.init_weights()
    for name, value in parent.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize('in_channels,kernel_size,groups,expected', [
    (64, 1, 1, OREPA1x1Conv2d), (64, 1, 2, OREPAConv2d), (64, 3, 1, OREPAConv2d),
    (64, 3, 32, OREPAConv2d), (3, 7, 1, OREPALargeConv2d),
    # A linear stem's last 3x3 generator could not hold every 7x7 kernel here.
    (64, 7, 1, OREPAConv2d), (64, 7, 64, OREPAConv2d)])
def test_orepa_type_picks_the_published_layer(in_channels, kernel_size, groups, expected):
    layer = build_conv_layer(dict(type='OREPA'), in_channels, 64, kernel_size, stride=2,
                             padding=kernel_size // 2, groups=groups, bias=False)
    assert type(layer) is expected
    assert (layer.stride, layer.groups, layer.bias) == ((2, 2), groups, None)


def test_orepa_type_ablation_switches():
    plain_1x1 = build_conv_layer(dict(type='OREPA', rep_1x1=False), 8, 8, 1)
    assert type(plain_1x1) is nn.Conv2d
    stem = build_conv_layer(dict(type='OREPA', linear_stem=False), 3, 8, 7, padding=3)
    assert type(stem) is OREPAConv2d
    few = build_conv_layer(dict(type='OREPA', branches=('origin', 'avg'), scaling='scalar'),
                           8, 8, 3)
    assert list(few.branches.keys()) == ['origin', 'avg'] and few.branches.scales.shape == (2, 1)


def test_gradients_reach_every_branch_and_branches_stay_distinct():
    torch.manual_seed(0)
    model = nn.Sequential(OREPAConv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8),
                          nn.ReLU(), OREPA1x1Conv2d(8, 16), nn.BatchNorm2d(16),
                          OREPALargeConv2d(16, 4, 5, padding=2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(4, 8, 10, 10)
    for step in range(3):
        optimizer.zero_grad()
        model(x).square().mean().backward()
        for name, param in model.named_parameters():
            # The prior branch starts at scale 0 (published), so its kernel
            # gets gradient from the second step on, once its scale has moved.
            if step == 0 and 'prior.weight' in name:
                continue
            assert param.grad is not None and param.grad.abs().sum() > 0, (step, name)
        optimizer.step()
    for module in model.modules():
        if isinstance(module, ReparamConv2d) and hasattr(module, 'branches'):
            kernels = [branch.kernel().flatten() for branch in module.branches.values()]
            for i in range(len(kernels)):
                for j in range(i + 1, len(kernels)):
                    similarity = torch.cosine_similarity(kernels[i], kernels[j], dim=0)
                    assert similarity.abs() < 0.99


@pytest.mark.parametrize('branches', [tuple(OREPA_BRANCHES), ('origin', '1x1')])
@pytest.mark.parametrize('kernel_size', [1, 3, 5])
def test_the_kernel_sum_changes_no_view_in_place(branches, kernel_size):
    """Every branch is added to the whole kernel, never to a slice of it:
    autograd undoes an in-place change of a view (CopySlices) by copying the
    whole kernel gradient twice in every backward pass."""
    layer = OREPAConv2d(8, 8, kernel_size, padding=kernel_size // 2, branches=branches)
    kernel = layer.branches.kernel()
    nodes, seen = [kernel.grad_fn], set()
    while nodes:
        node = nodes.pop()
        if node is not None and node not in seen:
            seen.add(node)
            assert type(node).__name__ != 'CopySlices', branches
            nodes += [next_node for next_node, _ in node.next_functions]
    assert len(seen) > len(branches)
    assert kernel._base is None


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(in_channels=6, out_channels=8, kernel_size=3, groups=4), ValueError, 'in_channels'),
    (dict(in_channels=8, out_channels=6, kernel_size=3, groups=4), ValueError, 'out_channels'),
    (dict(in_channels=0, out_channels=6, kernel_size=3), ValueError, 'in_channels'),
    (dict(in_channels=4, out_channels=-1, kernel_size=3), ValueError, 'out_channels'),
    (dict(in_channels=4.0, out_channels=4, kernel_size=3), TypeError, 'in_channels'),
    (dict(in_channels=4, out_channels=4, kernel_size=2), ValueError, 'kernel_size'),
    (dict(in_channels=4, out_channels=4, kernel_size=0), ValueError, 'kernel_size'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, stride=0), ValueError, 'stride'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, padding=-1), ValueError, 'padding'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, padding_mode='reflect'), ValueError,
     'padding_mode'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, branches=('origin', 'fft')), ValueError,
     'branches'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, branches=()), ValueError, 'branches'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, branches='origin'), TypeError,
     'branches'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, scaling='matrix'), ValueError,
     'scaling'),
])
def test_orepa_conv_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        OREPAConv2d(**kwargs)


def test_other_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match='groups'):
        OREPA1x1Conv2d(4, 4, groups=2)
    with pytest.raises(ValueError, match='kernel_size'):
        OREPA1x1Conv2d(4, 4, kernel_size=3)
    with pytest.raises(ValueError, match='kernel_size'):
        OREPALargeConv2d(3, 8, 6)
    with pytest.raises(ValueError, match='kernel_size'):
        OREPALargeConv2d(3, 8, 3)


def _others(layer, solved):
    """Every tensor of ``layer`` except those of the branch that was solved."""
    return {name: t.clone() for name, t in layer.named_parameters() if solved not in name}


@given(geometry=conv_geometry(kernel_sizes=(1, 3, 5)),
       branches=st.lists(st.sampled_from(list(OREPA_BRANCHES)), min_size=1, max_size=6,
                         unique=True),
       scaling=st.sampled_from(['vector', 'scalar', None]), dtype=DTYPES)
def test_orepa_conv_takes_any_kernel_into_one_branch(geometry, branches, scaling, dtype):
    """The inverse of squeezing: after set_squeezed_kernel the layer is the given
    conv (float64 1e-10, float32 1e-4 of scale); the branches other than the
    solved one keep their values. Without origin and 1x1-kxk no branch can hold
    every kernel, which is an error."""
    layer = randomize_scales(OREPAConv2d(**geometry, branches=branches, scaling=scaling))
    layer = layer.to(dtype)
    kernel = torch.randn(layer.kernel_shape, dtype=dtype)
    bias = torch.randn(layer.out_channels, dtype=dtype) if geometry['bias'] else None
    solved = 'origin' if 'origin' in branches else '1x1_kxk' if '1x1_kxk' in branches else None
    if solved is None:
        with pytest.raises(ValueError, match="keep 'origin' or '1x1_kxk'"):
            layer.set_squeezed_kernel(kernel, bias)
        return
    kept = _others(layer, f'branches.{solved}.')
    layer.set_squeezed_kernel(kernel, bias)
    with torch.no_grad():
        squeezed, squeezed_bias = layer.squeezed_kernel()
        assert_close_to_scale(squeezed, kernel)
        if bias is not None:
            assert torch.equal(squeezed_bias, bias)
    assert all(torch.equal(t, kept[name]) for name, t in layer.named_parameters()
               if name in kept and name != 'bias')


@given(cin=st.integers(1, 12), cout=st.integers(1, 12),
       scaling=st.sampled_from(['vector', 'scalar', None]), dtype=DTYPES)
def test_rep_1x1_takes_any_kernel(cin, cout, scaling, dtype):
    layer = randomize_scales(OREPA1x1Conv2d(cin, cout, scaling=scaling)).to(dtype)
    kernel = torch.randn(layer.kernel_shape, dtype=dtype)
    chain = _others(layer, 'branches.origin.')
    layer.set_squeezed_kernel(kernel)
    with torch.no_grad():
        assert_close_to_scale(layer.squeezed_kernel()[0], kernel)
    assert all(torch.equal(t, chain[name]) for name, t in layer.named_parameters()
               if name in chain)


def test_zero_scale_where_the_kernel_must_change_is_an_error():
    layer = OREPAConv2d(4, 4, 3, padding=1)
    with torch.no_grad():
        layer.branches.scales[0, 2] = 0.0
    with pytest.raises(ValueError, match=r'output channels \[2\] have a zero scale'):
        layer.set_squeezed_kernel(torch.randn(layer.kernel_shape))


@pytest.mark.parametrize('dtype, tolerance', [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize('in_channels, out_channels, kernel_size', [(3, 64, 7), (3, 32, 5)])
def test_linear_deep_stem_takes_a_stock_kernel(dtype, tolerance, in_channels, out_channels,
                                               kernel_size):
    """The stock 7x7 stem solved into the last 3x3 generator: exact (relative
    1e-5 of scale in float32, 1e-10 in float64) with the first generators
    untouched."""
    torch.manual_seed(0)
    stem = OREPALargeConv2d(in_channels, out_channels, kernel_size, stride=2,
                            padding=kernel_size // 2).to(dtype)
    kernel = torch.randn(stem.kernel_shape, dtype=dtype) * 0.05
    kept = _others(stem, f'generators.{len(stem.generators) - 1}.origin.')
    stem.set_squeezed_kernel(kernel)
    with torch.no_grad():
        assert_close_to_scale(stem.squeezed_kernel()[0], kernel, rel=tolerance)
        x = torch.randn(2, in_channels, 32, 32, dtype=dtype)
        expected = nn.functional.conv2d(x, kernel, stride=2, padding=kernel_size // 2)
        assert_close_to_scale(stem(x), expected, rel=tolerance)
    assert all(torch.equal(t, kept[name]) for name, t in stem.named_parameters() if name in kept)


def test_linear_deep_stem_refuses_a_kernel_it_cannot_hold():
    """8 output channels of 3x3 generators cannot make every 5x5 kernel from 64
    inputs: the solve is inexact, and says so instead of loading a wrong kernel."""
    stem = OREPALargeConv2d(64, 8, 5, padding=2)
    before = {name: t.clone() for name, t in stem.state_dict().items()}
    with pytest.raises(ValueError, match='relative residual .* needs residual <= 1e-10'):
        stem.set_squeezed_kernel(torch.randn(stem.kernel_shape))
    assert all(torch.equal(t, before[name]) for name, t in stem.state_dict().items())
