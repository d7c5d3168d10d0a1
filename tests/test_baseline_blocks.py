"""DBB and RepVGG / OREPA-VGG blocks squeeze exactly, borders included."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from mmcv.cnn import build_conv_layer
from mmpretrain.models.backbones.repvgg import RepVGGBlock
from torch import nn

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import reparameterize
from mmorepa.backbones import squeeze_repvgg_block
from mmorepa.layers import DBBConv2d

DTYPES = st.sampled_from([torch.float32, torch.float64])


@given(groups=st.sampled_from([1, 2, 8]), per_group=st.integers(1, 3),
       out_per_group=st.integers(1, 3), k=st.sampled_from([3, 5]),
       stride=st.sampled_from([1, 2]), dilation=st.sampled_from([1, 2, 4]), bias=st.booleans(),
       dtype=DTYPES)
def test_dbb_squeezes_exactly(groups, per_group, out_per_group, k, stride, dilation, bias, dtype):
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
    assert type(build_conv_layer(dict(type='DBB'), 4, 8, 1)) is nn.Conv2d
    with pytest.raises(ValueError, match='padding'):
        DBBConv2d(4, 4, 3, padding=0)
    with pytest.raises(ValueError, match='padding'):
        DBBConv2d(4, 4, 3, padding=1, dilation=2)
    assert DBBConv2d(4, 4, 3, dilation=2).padding == (2, 2)
    with pytest.raises(ValueError, match='kernel_size'):
        DBBConv2d(4, 4, 1)
    with pytest.raises(ValueError, match='in_channels'):
        DBBConv2d(4, 8, 3, groups=8)
    assert DBBConv2d(4, 4, 3, groups=4).depthwise and not DBBConv2d(8, 4, 3, groups=4).depthwise


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
