"""DBB and RepVGG / OREPA-VGG blocks squeeze exactly, borders included; DBB has
the published layout (method: docs/method.md; facts: the DBB release)."""
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from mmcv.cnn import build_conv_layer
from mmpretrain.models.backbones.repvgg import RepVGGBlock
from torch import nn

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import OREPAResNet, reparameterize
from mmorepa.backbones import squeeze_repvgg_block
from mmorepa.kernels import grouped_identity
from mmorepa.layers import AbsentNorm, DBBConv2d
from mmorepa.layers.dbb import IdentityBasedConv1x1

DTYPES = st.sampled_from([torch.float32, torch.float64])


@given(groups=st.sampled_from([1, 2, 8]), per_group=st.integers(1, 3),
       out_per_group=st.integers(1, 3), k=st.sampled_from([3, 5]),
       stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2, 4]), bias=st.booleans(),
       dtype=DTYPES)
def test_dbb_squeezes_exactly(groups, per_group, out_per_group, k, stride, dilation, bias, dtype):
    # groups >= out_channels is a depthwise DBB, which needs in == out.
    assume(out_per_group > 1 or per_group == 1)
    block = DBBConv2d(groups * per_group, groups * out_per_group, k, stride,
                      dilation=dilation, groups=groups, bias=bias)
    block = randomize_norms(block).to(dtype).eval()
    side = 11 + 2 * dilation * (k // 2)
    x = torch.randn(2, block.in_channels, side, side,
                    dtype=dtype)
    with torch.no_grad():
        squeezed = reparameterize(block)
        assert type(squeezed) is nn.Conv2d and squeezed.bias is not None
        assert_close_to_scale(squeezed(x), block(x))


@given(channels=st.integers(2, 6), k=st.sampled_from([3, 5]), stride=st.sampled_from([1, 2]),
       dilation=st.sampled_from([1, 2]), dtype=DTYPES)
def test_depthwise_dbb_squeezes_exactly(channels, k, stride, dilation, dtype):
    block = randomize_norms(DBBConv2d(channels, channels, k, stride, dilation=dilation,
                                      groups=channels))
    block = block.to(dtype).eval()
    x = torch.randn(2, channels, 9, 9, dtype=dtype)
    with torch.no_grad():
        assert_close_to_scale(reparameterize(block)(x), block(x))


def test_dbb_registered_and_validated():
    assert type(build_conv_layer(dict(type='DBB'), 4, 8, 3, 1, 1)) is DBBConv2d
    assert type(build_conv_layer(dict(type='DBB'), 4, 8, 5, 1, 2)) is DBBConv2d
    # Published DBB-ResNet: 1x1 convs and the 7x7 stem stay plain.
    assert type(build_conv_layer(dict(type='DBB'), 4, 8, 1)) is nn.Conv2d
    assert type(build_conv_layer(dict(type='DBB'), 3, 8, 7, 2, 3)) is nn.Conv2d
    with pytest.raises(ValueError, match='padding'):
        DBBConv2d(4, 4, 3, padding=0)
    with pytest.raises(ValueError, match='padding'):
        DBBConv2d(4, 4, 3, padding=1, dilation=2)
    assert DBBConv2d(4, 4, 3, dilation=2).padding == (2, 2)
    with pytest.raises(ValueError, match='kernel_size'):
        DBBConv2d(4, 4, 1)
    with pytest.raises(ValueError, match='in_channels'):
        DBBConv2d(4, 8, 3, groups=8)
    with pytest.raises(ValueError, match='in_channels == out_channels'):
        DBBConv2d(8, 4, 3, groups=4)
    assert DBBConv2d(4, 4, 3, groups=4).depthwise and not DBBConv2d(8, 8, 3, groups=4).depthwise


@pytest.mark.parametrize('in_channels, out_channels, groups', [(4, 8, 1), (8, 8, 4), (6, 6, 6)])
def test_dbb_has_the_published_layout(in_channels, out_channels, groups):
    """Middle width I with an identity-started 1x1 while groups < O; else 2I, plain."""
    block = DBBConv2d(in_channels, out_channels, 3, groups=groups)
    depthwise = groups >= out_channels
    assert hasattr(block, 'conv1x1') != depthwise and hasattr(block, 'avg_conv') != depthwise
    first = block.chain_conv1
    if depthwise:
        assert type(first) is nn.Conv2d and first.out_channels == 2 * in_channels
    else:
        assert isinstance(first, IdentityBasedConv1x1)
        assert torch.equal(first.kernel(), grouped_identity(in_channels, in_channels // groups))


def test_dbb_resnet_is_the_published_one():
    """Plain 7x7 stem and 1x1 convs, no norm after a DBB, identity starts that
    survive the backbone's init_weights (Kaiming on every nn.Conv2d)."""
    backbone = OREPAResNet(50, reparam='dbb')
    backbone.init_weights()
    dbbs = [m for m in backbone.modules() if isinstance(m, DBBConv2d)]
    assert len(dbbs) == 16  # the 3x3 conv of each of the 16 bottlenecks
    assert type(backbone.conv1) is nn.Conv2d and backbone.conv1.kernel_size == (7, 7)
    for block in (backbone.layer1[0], backbone.layer4[2]):
        assert type(block.conv1) is nn.Conv2d and type(block.conv3) is nn.Conv2d
        assert isinstance(block.conv2, DBBConv2d) and isinstance(block.bn2, AbsentNorm)
        assert isinstance(block.bn1, nn.BatchNorm2d) and isinstance(block.bn3, nn.BatchNorm2d)
    for dbb in dbbs:
        first = dbb.chain_conv1
        assert torch.equal(first.kernel(), grouped_identity(dbb.in_channels, dbb.in_channels))


@given(groups=st.sampled_from([1, 2]), channels=st.integers(1, 3), k=st.sampled_from([3, 5]),
       with_bias=st.booleans(), dtype=DTYPES)
def test_dbb_takes_a_stock_kernel(groups, channels, k, with_bias, dtype):
    block = randomize_norms(DBBConv2d(groups * channels, groups * 2 * channels, k,
                                      groups=groups)).to(dtype).eval()
    kernel = torch.randn(block.kernel_shape, dtype=dtype)
    bias = torch.randn(block.out_channels, dtype=dtype) if with_bias else None
    block.set_squeezed_kernel(kernel, bias)
    x = torch.randn(2, block.in_channels, 9, 9, dtype=dtype)
    with torch.no_grad():
        expected = nn.functional.conv2d(x, kernel, bias, padding=k // 2, groups=groups)
        assert_close_to_scale(block(x), expected)


@given(cin=st.integers(1, 6), cout=st.integers(1, 6), stride=st.sampled_from([1, 2]),
       groups=st.sampled_from([1, 2]), orepa=st.booleans(), dtype=DTYPES)
def test_repvgg_and_orepa_vgg_blocks_squeeze_exactly(cin, cout, stride, groups, orepa, dtype):
    conv_cfg = dict(type='OREPAVGG') if orepa else None
    block = RepVGGBlock(cin * groups, cout * groups, stride, groups=groups, conv_cfg=conv_cfg)
    block = randomize_norms(randomize_scales(block)).to(dtype)
    block.eval()
    x = torch.randn(2, cin * groups, 9, 9, dtype=dtype)
    with torch.no_grad():
        expected = block(x)
        squeeze_repvgg_block(block)
        assert block.deploy and type(block.branch_reparam) is nn.Conv2d
        assert_close_to_scale(block(x), expected)
