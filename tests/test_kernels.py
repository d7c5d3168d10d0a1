"""Each kernel transform against the same operations run on feature maps."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from helpers import assert_close_to_scale, randomize_norms
from mmorepa.kernels import (avg_pool_kernel, compose_1x1_kxk, compose_kxk_kxk,
                             fold_bias_into_bn_stats, frequency_prior, fuse_conv_bn,
                             grouped_identity, pad_to_kernel_size, separable_to_dense,
                             solve_second_kernel)
from mmorepa.kernels.row_scaled_product import row_scaled_product
from mmorepa.layers.orepa_branches import PriorBranch

DTYPES = st.sampled_from([torch.float32, torch.float64])
GROUPS = st.sampled_from([1, 2, 4])


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


@given(groups=GROUPS, per_group=st.integers(1, 3), out_mult=st.integers(1, 3),
       k=st.sampled_from([1, 3, 5]), with_bias=st.booleans(), affine=st.booleans(),
       dtype=DTYPES)
def test_fuse_conv_bn_matches_conv_then_bn(groups, per_group, out_mult, k, with_bias, affine,
                                           dtype):
    cin, cout = groups * per_group, groups * out_mult
    kernel, x = rand(cout, per_group, k, k, dtype=dtype), rand(2, cin, 7, 7, dtype=dtype)
    bias = rand(cout, dtype=dtype) if with_bias else None
    bn = randomize_norms(nn.BatchNorm2d(cout, affine=affine)).to(dtype).eval()
    expected = bn(F.conv2d(x, kernel, bias, padding=k // 2, groups=groups))
    fused_kernel, fused_bias = fuse_conv_bn(kernel, bias, bn)
    assert_close_to_scale(F.conv2d(x, fused_kernel, fused_bias, padding=k // 2, groups=groups),
                          expected)


def test_fuse_conv_bn_needs_running_stats():
    bn = nn.BatchNorm2d(3, track_running_stats=False)
    with pytest.raises(ValueError, match='running statistics'):
        fuse_conv_bn(rand(3, 3, 1, 1), None, bn)


@given(channels=st.integers(1, 4), dtype=DTYPES)
def test_fold_bias_into_bn_stats(channels, dtype):
    bn = randomize_norms(nn.BatchNorm2d(channels)).to(dtype).eval()
    y, bias = rand(2, channels, 3, 3, dtype=dtype), rand(channels, dtype=dtype)
    expected = bn(y + bias.reshape(1, -1, 1, 1))
    fold_bias_into_bn_stats(bias, bn)
    assert_close_to_scale(bn(y), expected)


@given(small=st.sampled_from([1, 3]), grow=st.sampled_from([0, 2, 4]),
       stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2, 4]), groups=GROUPS)
def test_pad_to_kernel_size_keeps_the_conv(small, grow, stride, dilation, groups):
    size = small + grow
    kernel, x = rand(2 * groups, 2, small, small), rand(1, 2 * groups, 11, 11)
    expected = F.conv2d(x, kernel, stride=stride, padding=dilation * (small // 2),
                        dilation=dilation, groups=groups)
    padded = pad_to_kernel_size(kernel, size)
    assert padded.shape[-2:] == (size, size)
    actual = F.conv2d(x, padded, stride=stride, padding=dilation * (size // 2),
                      dilation=dilation, groups=groups)
    assert_close_to_scale(actual, expected)


@pytest.mark.parametrize('small,size', [(2, 4), (3, 1), (3, 4)])
def test_pad_to_kernel_size_rejects_bad_sizes(small, size):
    with pytest.raises(ValueError, match='odd'):
        pad_to_kernel_size(rand(1, 1, small, small), size)


@given(k=st.sampled_from([1, 3, 5, 7]), stride=st.sampled_from([1, 2]), groups=GROUPS,
       padding=st.integers(0, 3))
def test_avg_pool_kernel_matches_conv_then_pool(k, stride, groups, padding):
    padding = min(padding, k // 2)  # avg_pool2d allows at most half the window
    conv1x1, x = rand(2 * groups, 3, 1, 1), rand(2, 3 * groups, 12, 12)
    expected = F.avg_pool2d(F.conv2d(x, conv1x1, groups=groups), k, stride, padding,
                            count_include_pad=True)
    actual = F.conv2d(x, avg_pool_kernel(conv1x1, k), stride=stride, padding=padding,
                      groups=groups)
    assert_close_to_scale(actual, expected)


@given(groups=st.sampled_from([1, 2, 4, 32]), per_group=st.integers(1, 3),
       mid_mult=st.sampled_from([1, 2]), k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2]), dtype=DTYPES)
def test_compose_1x1_kxk_matches_two_convs(groups, per_group, mid_mult, k, stride, dilation,
                                           dtype):
    cin = groups * per_group
    mid, cout = cin * mid_mult, groups * 2
    first = rand(mid, per_group, 1, 1, dtype=dtype)
    second = rand(cout, mid // groups, k, k, dtype=dtype)
    x = rand(2, cin, 9, 9, dtype=dtype)
    pad = dilation * (k // 2)
    # No bias: the 1x1 output is zero on the padded border either way, so the
    # two forms agree everywhere, borders included.
    expected = F.conv2d(F.conv2d(x, first, groups=groups), second, stride=stride, padding=pad,
                        dilation=dilation, groups=groups)
    actual = F.conv2d(x, compose_1x1_kxk(first, second, groups), stride=stride, padding=pad,
                      dilation=dilation, groups=groups)
    assert_close_to_scale(actual, expected)


@given(groups=GROUPS, k1=st.sampled_from([1, 3, 5]), k2=st.sampled_from([1, 3]),
       mid_per_group=st.integers(1, 3), dtype=DTYPES)
def test_compose_kxk_kxk_matches_two_convs_on_valid_region(groups, k1, k2, mid_per_group,
                                                           dtype):
    cin, mid, cout = 2 * groups, mid_per_group * groups, 3 * groups
    first = rand(mid, cin // groups, k1, k1, dtype=dtype)
    second = rand(cout, mid_per_group, k2, k2, dtype=dtype)
    x = rand(2, cin, 10, 10, dtype=dtype)
    expected = F.conv2d(F.conv2d(x, first, groups=groups), second, groups=groups)
    composed = compose_kxk_kxk(first, second, groups)
    assert composed.shape == (cout, cin // groups, k1 + k2 - 1, k1 + k2 - 1)
    assert_close_to_scale(F.conv2d(x, composed, groups=groups), expected)


def test_compose_rejects_mismatched_kernels():
    with pytest.raises(ValueError, match='groups'):
        compose_1x1_kxk(rand(4, 2, 1, 1), rand(6, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match='divisible'):
        compose_kxk_kxk(rand(3, 2, 3, 3), rand(4, 1, 3, 3), groups=2)


@given(groups=st.sampled_from([1, 2, 4, 32]), per_group=st.integers(1, 2),
       expansion=st.sampled_from([1, 8]), k=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2, 4]))
def test_separable_to_dense_matches_depthwise_then_pointwise(groups, per_group, expansion, k,
                                                             stride, dilation):
    cin, cout = groups * per_group, groups * 2
    depthwise = rand(expansion * cin, 1, k, k)
    pointwise = rand(cout, expansion * cin // groups, 1, 1)
    x = rand(2, cin, 13, 13)
    pad = dilation * (k // 2)
    expected = F.conv2d(F.conv2d(x, depthwise, stride=stride, padding=pad, dilation=dilation,
                                 groups=cin), pointwise, groups=groups)
    dense = separable_to_dense(depthwise, pointwise, expansion, groups)
    actual = F.conv2d(x, dense, stride=stride, padding=pad, dilation=dilation, groups=groups)
    assert_close_to_scale(actual, expected)


def _row_scaled_factors(equation, groups, scaling):
    """Random (left, right, row_scale, reference kernel function) for an equation."""
    out_per_group, in_per_group = 3, 2
    if equation == 'compose':
        mid_per_group = 4
        left = rand(groups * out_per_group, mid_per_group, 3, 3)  # second conv
        right = rand(groups * mid_per_group, in_per_group, 1, 1)  # 1x1 conv

        def kernel(left, right, scale, **kwargs):
            return compose_1x1_kxk(right, left, groups, scale, **kwargs)
    else:
        expansion = 3
        left = rand(groups * out_per_group, expansion * in_per_group, 1, 1)  # pointwise
        right = rand(expansion * in_per_group * groups, 1, 3, 3)  # depthwise

        def kernel(left, right, scale, **kwargs):
            return separable_to_dense(right, left, expansion, groups, scale, **kwargs)
    scale = {None: None, 'vector': rand(left.shape[0]), 'scalar': rand(1)}[scaling]
    return left, right, scale, kernel


def _rows_scaled(kernel, scale):
    return kernel if scale is None else kernel * scale.reshape(-1, 1, 1, 1)


@pytest.mark.parametrize('equation', ['compose', 'separable'])
@pytest.mark.parametrize('groups', [1, 2])
@pytest.mark.parametrize('scaling', [None, 'vector', 'scalar'])
@pytest.mark.parametrize('check', [torch.autograd.gradcheck, torch.autograd.gradgradcheck],
                         ids=['backward', 'double-backward'])
@pytest.mark.parametrize('accumulate', [False, True], ids=['new', 'accumulated'])
def test_row_scaled_kernels_have_exact_gradients(equation, groups, scaling, check, accumulate):
    """The hand-written backward, and its own backward (gradient penalties), agree
    with finite differences (float64); also when the product is added in place
    to a kernel that is itself differentiable (the branch sum's accumulation)."""
    left, right, scale, kernel = _row_scaled_factors(equation, groups, scaling)
    shape = kernel(left, right, scale).shape
    base = rand(*shape)
    inputs = [t.requires_grad_() for t in (left, right, scale, base if accumulate else None)
              if t is not None]

    def function(*tensors):
        scale_in = tensors[2] if scale is not None else None
        if not accumulate:
            return kernel(tensors[0], tensors[1], scale_in)
        into = tensors[-1] * 1.0  # a non-leaf, as the branch sum's kernel
        out = kernel(tensors[0], tensors[1], scale_in, accumulate_into=into)
        assert out is into
        return out

    assert check(function, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize('equation', ['compose', 'separable'])
@pytest.mark.parametrize('scaling', [None, 'vector', 'scalar'])
@pytest.mark.parametrize('autocast_in_backward', [False, True])
def test_row_scaled_kernels_under_autocast(equation, scaling, autocast_in_backward):
    """bfloat16 autocast: the product runs in bfloat16, every gradient comes back
    finite, in its input's dtype and within bfloat16's precision (relative 3e-2
    of the largest entry) of float32's."""
    factors = [t if t is None else t.float() for t in _row_scaled_factors(equation, 2,
                                                                          scaling)[:3]]
    kernel = _row_scaled_factors(equation, 2, scaling)[3]
    grads = {}
    for amp in (False, True):
        inputs = [t.detach().clone().requires_grad_() if t is not None else None
                  for t in factors]
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            out = kernel(*inputs)
            assert out.dtype == (torch.bfloat16 if amp else torch.float32)
            if autocast_in_backward:
                (out.float() ** 2).sum().backward()
        if not autocast_in_backward:
            (out.float() ** 2).sum().backward()
        grads[amp] = [t.grad for t in inputs if t is not None]
    for exact, mixed in zip(grads[False], grads[True]):
        assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
        assert_close_to_scale(mixed, exact, rel=3e-2)


@pytest.mark.parametrize('equation', ['compose', 'separable'])
@pytest.mark.parametrize('scaling', [None, 'vector', 'scalar'])
def test_row_scale_equals_scaling_the_kernel(equation, scaling):
    left, right, scale, kernel = _row_scaled_factors(equation, 2, scaling)
    assert_close_to_scale(kernel(left, right, scale),
                          _rows_scaled(kernel(left, right, None), scale))


@pytest.mark.parametrize('equation', ['compose', 'separable'])
def test_row_scaled_kernels_save_only_their_inputs(equation):
    """Autograd keeps no kernel-size tensor but the factors themselves."""
    left, right, scale, kernel = _row_scaled_factors(equation, 2, 'vector')
    inputs = [t.requires_grad_() for t in (left, right, scale)]
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        kernel(left, right, scale)
    input_storages = {t.untyped_storage().data_ptr() for t in inputs}
    assert saved and all(t.untyped_storage().data_ptr() in input_storages for t in saved)


@pytest.mark.parametrize('equation', ['compose', 'separable'])
def test_accumulating_modifies_the_kernel_itself(equation):
    """The product is added to the kernel, not to a view of it: autograd's
    node for an in-place change of a view (CopySlices) would copy the whole
    kernel gradient twice in every backward pass."""
    left, right, scale, kernel = _row_scaled_factors(equation, 2, 'vector')
    into = rand(*kernel(left, right, scale).shape).requires_grad_() * 1.0
    out = kernel(*(t.requires_grad_() for t in (left, right, scale)), accumulate_into=into)
    assert out is into and out._base is None
    assert type(out.grad_fn).__name__ == '_RowScaledProductBackward'


def test_row_scaled_product_rejects_bad_arguments():
    left, right = rand(2, 3, 4, 5), rand(2, 4, 6)
    with pytest.raises(ValueError, match='equation'):
        row_scaled_product('gots,goi->gois', left, right)
    with pytest.raises(ValueError, match='row_scale'):
        row_scaled_product('gots,gti->gois', left, right, rand(3))
    with pytest.raises(ValueError, match='row_scale'):
        compose_1x1_kxk(rand(4, 2, 1, 1), rand(6, 4, 3, 3), row_scale=rand(5))


@pytest.mark.parametrize('out_channels', [1, 2, 5, 8])
@pytest.mark.parametrize('k', [1, 3, 5, 7])
def test_frequency_prior_follows_its_formula(out_channels, k):
    basis = frequency_prior(out_channels, k, dtype=torch.float64)
    half = out_channels / 2
    for o in range(out_channels):
        for h in range(k):
            for w in range(k):
                if o < half:
                    want = math.cos(math.pi * (h + 0.5) * (o + 1) / k)
                else:
                    want = math.cos(math.pi * (w + 0.5) * (o + 1 - half) / k)
                assert basis[o, h, w].item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize('out_channels, k', [(6, 3), (7, 5), (64, 3)])
def test_frequency_prior_is_rounded_once(out_channels, k):
    """Every dtype gets the float64 basis rounded once, also after a cast of its
    module (a float32 buffer cast to float64 would keep float32's error)."""
    exact = frequency_prior(out_channels, k, dtype=torch.float64)
    assert torch.equal(frequency_prior(out_channels, k), exact.float())
    branch = PriorBranch(4, out_channels, k, 1, 0.0)
    assert torch.equal(branch.basis, exact.float())
    assert torch.equal(branch.double().basis, exact)
    assert torch.equal(branch.float().basis, exact.float())
    assert torch.equal(branch.half().basis, exact.half())


@given(rows=st.integers(1, 9), in_per_group=st.integers(1, 4))
def test_grouped_identity_copies_the_input_channels(rows, in_per_group):
    identity = grouped_identity(rows, in_per_group)
    x = rand(2, in_per_group, 3, 3, dtype=torch.float32)
    out = F.conv2d(x, identity)
    for t in range(rows):
        assert torch.equal(out[:, t], x[:, t % in_per_group])


@given(groups=st.sampled_from([1, 2]), in_per_group=st.integers(1, 2),
       mid_per_group=st.sampled_from([1, 2, 12, 16]), k1=st.sampled_from([3, 5]))
def test_solve_second_kernel_composes_to_the_target(groups, in_per_group, mid_per_group, k1):
    """Random kernels with many more unknowns (M/g * 9) than equations
    (I/g * (k1 + 2)^2): the solve is exact. With fewer, it reports a residual.
    Either way it is the smallest change of the kernel."""
    first = rand(groups * mid_per_group, in_per_group, k1, k1)
    second = rand(groups * 3, mid_per_group, 3, 3)
    target = rand(groups * 3, in_per_group, k1 + 2, k1 + 2)
    solved, residual, condition = solve_second_kernel(first, second, target, groups)
    assert condition >= 1
    if mid_per_group * 9 >= 2 * in_per_group * (k1 + 2)**2:
        assert residual <= 1e-10 and condition < 1e6
        assert_close_to_scale(compose_kxk_kxk(first, solved, groups), target)
    elif mid_per_group * 9 < in_per_group * (k1 + 2)**2:
        assert residual > 1e-3
    step = solved - second
    # The smallest change: the step has no component in the map's null space,
    # whose vectors the solve itself gives (the solution for target zero).
    for _ in range(3):
        other = rand(*second.shape)
        null = solve_second_kernel(first, other, torch.zeros_like(target), groups)[0]
        scale = compose_kxk_kxk(first, other, groups).abs().max()
        assert compose_kxk_kxk(first, null, groups).abs().max() <= 1e-9 * scale
        assert abs((step * null).sum()) <= 1e-9 * step.norm() * other.norm()


def test_solve_second_kernel_checks_the_target_shape():
    with pytest.raises(ValueError, match='target must have shape'):
        solve_second_kernel(rand(4, 1, 3, 3), rand(2, 4, 3, 3), rand(2, 1, 3, 3))
