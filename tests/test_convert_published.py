"""tools/convert_published.py: the authors' published OREPA checkpoints into mmorepa.

The published model is rebuilt here from the method spec alone (its
equations, sec. 2-3, and its checkpoint layout, sec. 4-5): published-format
state dicts with random values, and a reference forward pass that squeezes
each published block the way the spec says, without the converter and without
mmorepa's kernel functions. A converted checkpoint, loaded with
``strict=True`` into the classifier of the shipped config, must give the same
logits in float64.
"""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine import Config
from mmpretrain.registry import MODELS

from mmorepa.engine import ReparamError, convert_published_state_dict, read_checkpoint
from tools.convert_published import parse_args, published_archs

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'imagenet' / 'published' / 'orepa-{arch}_in1k.py'
TOOL = REPO / 'tools' / 'convert_published.py'

# float64 logits of the converted model vs. the reference: max abs error at
# most this fraction of max |logits| (only summation order differs).
LOGITS_REL_TOL = 1e-8
# A conversion step left out must show far above that.
MISCONVERSION_MIN_REL_ERROR = 1e-3
BN_EPS = 1e-5
INPUT_SHAPE = (1, 3, 32, 32)

# Published layouts (method spec, sec. 4): bottleneck or basic blocks, blocks
# per stage, stem width, block widths per stage, middle widths of
# bottlenecks, groups of their 3x3 conv.
RESNETS = {
    'resnet18': dict(bottleneck=False, blocks=(2, 2, 2, 2), stem=64, planes=(64, 128, 256, 512)),
    'resnet34': dict(bottleneck=False, blocks=(3, 4, 6, 3), stem=64, planes=(64, 128, 256, 512)),
    'resnet50': dict(bottleneck=True, blocks=(3, 4, 6, 3), stem=64, planes=(64, 128, 256, 512)),
    'resnet101': dict(bottleneck=True, blocks=(3, 4, 23, 3), stem=64,
                      planes=(64, 128, 256, 512)),
    'wrn18-2x': dict(bottleneck=False, blocks=(2, 2, 2, 2), stem=128,
                     planes=(128, 256, 512, 1024)),
    'resnext50': dict(bottleneck=True, blocks=(3, 4, 6, 3), stem=64, planes=(64, 128, 256, 512),
                      middle=(128, 256, 512, 1024), groups=32),
}
# OREPA-VGG: (blocks per stage, a, b); widths 64a, 128a, 256a, 512b.
VGGS = {
    'repvgg-a0': ((2, 4, 14, 1), 0.75, 2.5),
    'repvgg-a1': ((2, 4, 14, 1), 1.0, 2.5),
    'repvgg-a2': ((2, 4, 14, 1), 1.5, 2.75),
}
RESNET_ORDER = ('origin', 'avg', 'prior', '1x1_kxk', '1x1', 'dws')
VGG_ORDER = ('origin', 'avg', 'prior', '1x1_kxk', 'dws')
EXPANSION = 8


# ---------------------------------------------------------------------------
# Published-format state dicts with random values.
# ---------------------------------------------------------------------------
class PublishedBuilder:
    """Fills a published-format state dict with random tensors.

    Kernels are ``N(0, 1/fan_in)``, scales never zero, BatchNorms random in
    every statistic, so every branch and every norm shows in the output.
    """

    def __init__(self, seed: int, dtype: torch.dtype, rep_1x1_as_matrix: bool = False):
        self.rng = torch.Generator().manual_seed(seed)
        self.dtype = dtype
        self.rep_1x1_as_matrix = rep_1x1_as_matrix
        self.state = {}

    def randn(self, *shape, fan_in=1):
        # Drawn in float32 (several times faster), used in self.dtype.
        values = torch.randn(shape, generator=self.rng).to(self.dtype)
        return values / math.sqrt(fan_in)

    def kernel(self, *shape):
        return self.randn(*shape, fan_in=math.prod(shape[1:]))

    def bn(self, prefix, channels):
        self.state.update({
            f'{prefix}.weight': self.randn(channels),
            f'{prefix}.bias': self.randn(channels),
            f'{prefix}.running_mean': self.randn(channels),
            f'{prefix}.running_var': torch.rand(channels, generator=self.rng,
                                                dtype=self.dtype) * 2 + 0.1,
            f'{prefix}.num_batches_tracked': torch.tensor(12345),
        })

    def orepa(self, prefix, in_channels, out_channels, groups=1, naming='orepa',
              unused_row=False, norm=True):
        """An OREPA 3x3 block (sec. 3.1), or OREPA-VGG's five-branch one (sec. 3.4)."""
        k, in_per_group = 3, in_channels // groups
        middle = in_channels if groups <= 4 else 2 * in_channels
        order = RESNET_ORDER if naming == 'orepa' else VGG_ORDER
        name = lambda n: f'{prefix}.weight_{naming}_{n}'  # noqa: E731
        identity = torch.zeros(middle, in_per_group, 1, 1, dtype=self.dtype)
        for t in range(middle):
            identity[t, t % in_per_group] = 1
        self.state.update({
            name('origin'): self.kernel(out_channels, in_per_group, k, k),
            name('avg_conv'): self.kernel(out_channels, in_per_group, 1, 1),
            name('avg_avg'): torch.full((k, k), 1 / k**2, dtype=self.dtype),
            name('pfir_conv'): self.kernel(out_channels, in_per_group, 1, 1),
            # The published buffer is a float32 tensor whatever the dtype of the rest.
            name('prior'): spec_prior(out_channels, torch.float32).to(self.dtype),
            # A non-zero delta: trained checkpoints have moved away from zero.
            name('1x1_kxk_idconv1'): self.randn(middle, in_per_group, 1, 1, fan_in=in_per_group),
            f'{prefix}.id_tensor': identity,
            name('1x1_kxk_conv2'): self.kernel(out_channels, middle // groups, k, k),
            name('gconv_dw'): self.kernel(EXPANSION * in_channels, 1, k, k),
            name('gconv_pw'): self.kernel(out_channels, EXPANSION * in_channels // groups, 1, 1),
        })
        if '1x1' in order:
            self.state[name('1x1')] = self.kernel(out_channels, in_per_group, 1, 1)
        # Scales ~ N(0, 1/branches): each conv keeps the size of its input,
        # so no part of the net drowns in another's output.
        vector = self.randn(len(order) + unused_row, out_channels, fan_in=len(order))
        if unused_row:
            vector[-1] = float('nan')  # uninitialized in the published model
        self.state[f'{prefix}.vector'] = vector
        if norm:
            self.bn(f'{prefix}.bn', out_channels)

    def rep_1x1(self, prefix, in_channels, out_channels):
        """Rep-1x1 (sec. 3.2); its chain's kernels optionally stored as matrices."""
        if out_channels > in_channels:
            first, second = (in_channels, in_channels), (out_channels, in_channels)
        else:
            first, second = (out_channels, in_channels), (out_channels, out_channels)
        tail = () if self.rep_1x1_as_matrix else (1, 1)
        self.state.update({
            f'{prefix}.weight_or1x1_origin': self.kernel(out_channels, in_channels, 1, 1),
            f'{prefix}.weight_or1x1_l2i_conv1': self.kernel(*first, *tail),
            f'{prefix}.weight_or1x1_l2i_conv2': self.kernel(*second, *tail),
            f'{prefix}.vector': self.randn(2, out_channels, fan_in=2),
        })
        self.bn(f'{prefix}.bn', out_channels)

    def linear(self, in_channels):
        self.state['linear.weight'] = self.kernel(1000, in_channels)
        self.state['linear.bias'] = self.randn(1000)


def spec_prior(out_channels, dtype=torch.float64):
    """The frequency prior F (sec. 3.1), written out entry by entry in float64."""
    half = out_channels / 2
    rows = []
    for o in range(out_channels):
        if o < half:
            rows.append([[math.cos(math.pi * (h + 0.5) * (o + 1) / 3)] * 3 for h in range(3)])
        else:
            rows.append([[math.cos(math.pi * (w + 0.5) * (o + 1 - half) / 3) for w in range(3)]
                         for _ in range(3)])
    return torch.tensor(rows, dtype=torch.float64).to(dtype)


def published_resnet(arch, builder):
    spec = RESNETS[arch]
    stem, groups = spec['stem'], spec.get('groups', 1)
    for j, c_in in enumerate((3, stem, stem)):
        builder.orepa(f'stage0.conv1.weight{j}', c_in, stem, norm=False)
    builder.bn('stage0.conv1.bn', stem)
    channels = stem
    for s, (num_blocks, planes) in enumerate(zip(spec['blocks'], spec['planes']), 1):
        for b in range(num_blocks):
            block, stride = f'stage{s}.{b}', 2 if s > 1 and b == 0 else 1
            if spec['bottleneck']:
                middle, out = spec.get('middle', spec['planes'])[s - 1], 4 * planes
                builder.rep_1x1(f'{block}.conv1', channels, middle)
                builder.orepa(f'{block}.conv2', middle, middle, groups)
                builder.rep_1x1(f'{block}.conv3', middle, out)
            else:
                out = planes
                builder.orepa(f'{block}.conv1', channels, out)
                builder.orepa(f'{block}.conv2', out, out)
            if stride != 1 or channels != out:
                if spec['bottleneck']:
                    builder.rep_1x1(f'{block}.shortcut', channels, out)
                else:
                    builder.state[f'{block}.shortcut.conv.weight'] = builder.kernel(
                        out, channels, 1, 1)
                    builder.bn(f'{block}.shortcut.bn', out)
            channels = out
    builder.linear(channels)
    return builder.state


def published_vgg_block(builder, prefix, in_channels, out_channels, stride):
    identity = in_channels == out_channels and stride == 1
    builder.orepa(f'{prefix}.rbr_dense', in_channels, out_channels, naming='rbr',
                  unused_row=identity)
    builder.state[f'{prefix}.rbr_1x1.conv.weight'] = builder.kernel(
        out_channels, in_channels, 1, 1)
    builder.bn(f'{prefix}.rbr_1x1.bn', out_channels)
    if identity:
        builder.bn(f'{prefix}.rbr_identity', in_channels)


def published_vgg(arch, builder):
    blocks, a, b = VGGS[arch]
    widths = (int(64 * a), int(128 * a), int(256 * a), int(512 * b))
    channels = min(64, int(64 * a))
    published_vgg_block(builder, 'stage0', 3, channels, stride=2)
    for s, (num_blocks, width) in enumerate(zip(blocks, widths), 1):
        for index in range(num_blocks):
            published_vgg_block(builder, f'stage{s}.{index}', channels, width,
                                stride=2 if index == 0 else 1)
            channels = width
    builder.linear(channels)
    return builder.state


def published_state_dict(arch, seed=0, dtype=torch.float64, **kwargs):
    builder = PublishedBuilder(seed, dtype, **kwargs)
    return (published_resnet if arch in RESNETS else published_vgg)(arch, builder)


# ---------------------------------------------------------------------------
# The published model's forward pass, from the spec's equations.
# ---------------------------------------------------------------------------
def ref_dws_kernel(depthwise, pointwise, groups):
    """Dense kernel of the separable pair (sec. 2), published row order (sec. 5)."""
    out = pointwise.shape[0]
    in_channels, k = depthwise.shape[0] // EXPANSION, depthwise.shape[-1]
    in_per_group, out_per_group = in_channels // groups, out // groups
    rows = torch.arange(out)
    channel_of_row = (rows % groups) * out_per_group + rows // groups
    group_of_row = channel_of_row // out_per_group
    # Expansion e of input channel i is depthwise row i*8+e; pointwise column i'*8+e
    # reads in-group input channel i'.
    per_group = depthwise.reshape(groups, in_per_group, EXPANSION, k, k)
    weights = pointwise.reshape(out, in_per_group, EXPANSION)
    dense = torch.empty(out, in_per_group, k, k, dtype=depthwise.dtype)
    for group in range(groups):
        in_group = group_of_row == group
        dense[channel_of_row[in_group]] = torch.einsum('rie,iehw->rihw', weights[in_group],
                                                       per_group[group])
    return dense


def ref_orepa_kernel(state, prefix, naming='orepa', groups=1):
    """The published OREPA 3x3 kernel: ``sum_b vector[b, o] * K_b[o]`` (sec. 3.1)."""
    weight = lambda n: state[f'{prefix}.weight_{naming}_{n}']  # noqa: E731
    origin = weight('origin')
    out, k = origin.shape[0], origin.shape[-1]
    first = (weight('1x1_kxk_idconv1') + state[f'{prefix}.id_tensor'])[:, :, 0, 0]
    second = weight('1x1_kxk_conv2')
    middle = first.shape[0]
    kernels = {
        'origin': origin,
        'avg': torch.einsum('oi,hw->oihw', weight('avg_conv')[:, :, 0, 0], weight('avg_avg')),
        # The filter itself, in float64: a float64 model computes with the exact basis.
        'prior': torch.einsum('oi,ohw->oihw', weight('pfir_conv')[:, :, 0, 0],
                              spec_prior(out).to(origin.dtype)),
        '1x1_kxk': torch.cat([
            torch.einsum('othw,ti->oihw', second[g * out // groups:(g + 1) * out // groups],
                         first[g * middle // groups:(g + 1) * middle // groups])
            for g in range(groups)
        ]),
        'dws': ref_dws_kernel(weight('gconv_dw'), weight('gconv_pw'), groups),
    }
    order = VGG_ORDER
    if naming == 'orepa':
        kernels['1x1'] = F.pad(weight('1x1'), [k // 2] * 4)
        order = RESNET_ORDER
    vector = state[f'{prefix}.vector']
    return sum(vector[row][:, None, None, None] * kernels[name] for row, name in enumerate(order))


def ref_rep_1x1_kernel(state, prefix):
    """Rep-1x1 (sec. 3.2): ``vector[0] * W + vector[1] * (C2 @ C1)``."""
    origin = state[f'{prefix}.weight_or1x1_origin']
    first = state[f'{prefix}.weight_or1x1_l2i_conv1']
    second = state[f'{prefix}.weight_or1x1_l2i_conv2']
    chain = (second.reshape(second.shape[:2]) @ first.reshape(first.shape[:2]))[:, :, None, None]
    scale = state[f'{prefix}.vector'][:, :, None, None, None]
    return scale[0] * origin + scale[1] * chain


def ref_stem_kernel(state):
    """Published linear deep stem (sec. 3.3): cross-correlate, padding 2."""
    kernel = ref_orepa_kernel(state, 'stage0.conv1.weight0').transpose(0, 1)
    for j in (1, 2):
        kernel = F.conv2d(kernel, ref_orepa_kernel(state, f'stage0.conv1.weight{j}'), padding=2)
    return kernel.transpose(0, 1)


def ref_bn(state, prefix, x):
    return F.batch_norm(x, state[f'{prefix}.running_mean'], state[f'{prefix}.running_var'],
                        state[f'{prefix}.weight'], state[f'{prefix}.bias'], False, 0.0, BN_EPS)


def ref_resnet_logits(state, x):
    x = F.conv2d(x, ref_stem_kernel(state), stride=2, padding=3)
    x = F.max_pool2d(F.relu(ref_bn(state, 'stage0.conv1.bn', x)), 3, 2, 1)
    bottleneck = 'stage1.0.conv3.vector' in state
    for s in range(1, 5):
        b = 0
        while f'stage{s}.{b}.conv1.bn.weight' in state:
            block, stride = f'stage{s}.{b}', 2 if s > 1 and b == 0 else 1
            if bottleneck:
                out = F.conv2d(x, ref_rep_1x1_kernel(state, f'{block}.conv1'))
                out = F.relu(ref_bn(state, f'{block}.conv1.bn', out))
                kernel_in = state[f'{block}.conv2.weight_orepa_origin'].shape[1]
                groups = out.shape[1] // kernel_in
                out = F.conv2d(out, ref_orepa_kernel(state, f'{block}.conv2', groups=groups),
                               stride=stride, padding=1, groups=groups)
                out = F.relu(ref_bn(state, f'{block}.conv2.bn', out))
                out = F.conv2d(out, ref_rep_1x1_kernel(state, f'{block}.conv3'))
                out = ref_bn(state, f'{block}.conv3.bn', out)
                if f'{block}.shortcut.vector' in state:
                    shortcut = F.conv2d(x, ref_rep_1x1_kernel(state, f'{block}.shortcut'),
                                        stride=stride)
                    x = ref_bn(state, f'{block}.shortcut.bn', shortcut)
            else:
                out = F.conv2d(x, ref_orepa_kernel(state, f'{block}.conv1'), stride=stride,
                               padding=1)
                out = F.relu(ref_bn(state, f'{block}.conv1.bn', out))
                out = F.conv2d(out, ref_orepa_kernel(state, f'{block}.conv2'), padding=1)
                out = ref_bn(state, f'{block}.conv2.bn', out)
                if f'{block}.shortcut.conv.weight' in state:
                    shortcut = F.conv2d(x, state[f'{block}.shortcut.conv.weight'], stride=stride)
                    x = ref_bn(state, f'{block}.shortcut.bn', shortcut)
            x = F.relu(out + x)
            b += 1
    return F.linear(x.mean((2, 3)), state['linear.weight'], state['linear.bias'])


def ref_vgg_block(state, prefix, x, stride):
    dense = F.conv2d(x, ref_orepa_kernel(state, f'{prefix}.rbr_dense', naming='rbr'),
                     stride=stride, padding=1)
    out = ref_bn(state, f'{prefix}.rbr_dense.bn', dense)
    out = out + ref_bn(state, f'{prefix}.rbr_1x1.bn',
                       F.conv2d(x, state[f'{prefix}.rbr_1x1.conv.weight'], stride=stride))
    if f'{prefix}.rbr_identity.weight' in state:
        out = out + ref_bn(state, f'{prefix}.rbr_identity', x)
    return F.relu(out)


def ref_vgg_logits(state, x):
    x = ref_vgg_block(state, 'stage0', x, stride=2)
    for s in range(1, 5):
        b = 0
        while f'stage{s}.{b}.rbr_dense.vector' in state:
            x = ref_vgg_block(state, f'stage{s}.{b}', x, stride=2 if b == 0 else 1)
            b += 1
    return F.linear(x.mean((2, 3)), state['linear.weight'], state['linear.bias'])


def reference_logits(arch, state, x):
    return (ref_resnet_logits if arch in RESNETS else ref_vgg_logits)(state, x)


# ---------------------------------------------------------------------------
# The shipped configs and the converter.
# ---------------------------------------------------------------------------
def build_classifier(arch, dtype=torch.float32):
    cfg = Config.fromfile(str(CONFIG).format(arch=arch))
    return MODELS.build(cfg.model).to(dtype).eval()


def relative_error(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def test_every_published_model_has_a_config():
    assert published_archs() == sorted([*RESNETS, *VGGS])
    for arch in published_archs():
        cfg = Config.fromfile(str(CONFIG).format(arch=arch))
        assert cfg.custom_imports == dict(imports=['mmorepa'], allow_failed_imports=False)
        assert cfg.default_scope == 'mmpretrain'
        assert cfg.model.neck.type == 'GlobalAveragePooling'
        assert cfg.model.backbone.out_indices == (3, )


# Logits are compared for one arch of each kind of block; the other archs
# only differ in depth and width, which strict loading checks.
LOGITS_ARCHS = ['resnet18', 'resnet50', 'resnext50', 'repvgg-a0']


def load_converted(arch, published, dtype):
    """The config's classifier with the converted checkpoint, loaded strictly."""
    model = build_classifier(arch, dtype)
    converted = convert_published_state_dict(published, model)
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    return model


@pytest.mark.parametrize('arch', sorted(set(RESNETS) | set(VGGS) - set(LOGITS_ARCHS)))
def test_converted_keys_are_exactly_those_of_the_config_model(arch):
    """A converted random checkpoint loads strictly into its config's model
    (the archs of the logits test are loaded the same way there)."""
    load_converted(arch, published_state_dict(arch, dtype=torch.float32), torch.float32)


def _restore(param, value):
    with torch.no_grad():
        param.copy_(value)


# Each conversion step, undone on the loaded model, must break the match:
# proof that the test sees it. (arch -> [(what, parameter, published key)])
MISCONVERSIONS = {
    'resnet18': [
        ('stem generator 1 not flipped', 'backbone.conv1.generators.1.origin.weight',
         'stage0.conv1.weight1.weight_orepa_origin'),
        ('stem generator 2 prior without signs', 'backbone.conv1.generators.2.prior.weight',
         'stage0.conv1.weight2.weight_orepa_pfir_conv'),
    ],
    'resnext50': [
        ('grouped pointwise rows not permuted',
         'backbone.layer1.0.conv2.branches.dws.pointwise',
         'stage1.0.conv2.weight_orepa_gconv_pw'),
    ],
}


@pytest.mark.parametrize('arch', LOGITS_ARCHS)
def test_converted_model_reproduces_published_logits(arch):
    """Basic-block, bottleneck, grouped and OREPA-VGG: float64 logits match the spec's model."""
    # Rep-1x1 chains as matrices in one net, as 1x1 kernels in the others.
    published = published_state_dict(arch, seed=1, rep_1x1_as_matrix=arch == 'resnet50')
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64)
    model = load_converted(arch, published, torch.float64)
    with torch.no_grad():
        expected = reference_logits(arch, published, x)
        actual = model(x, mode='tensor')
        error = relative_error(actual, expected)
        print(f'{arch}: max|logits| {expected.abs().max():.3e}, relative error {error:.2e}')
        assert error <= LOGITS_REL_TOL, f'{arch}: relative error {error:.2e}'
        state = model.state_dict()
        for what, target, source in MISCONVERSIONS.get(arch, []):
            kept = state[target].clone()
            _restore(state[target], published[source])
            wrong = relative_error(model(x, mode='tensor'), expected)
            print(f'  {what}: relative error {wrong:.2e}')
            assert wrong > MISCONVERSION_MIN_REL_ERROR, f'{arch}: {what} went unnoticed'
            _restore(state[target], kept)


@pytest.fixture(scope='module')
def a0_model():
    return build_classifier('repvgg-a0')


def test_wrapped_prefixed_and_countless_checkpoints_convert_alike(a0_model):
    published = published_state_dict('repvgg-a0', dtype=torch.float32)
    bare = convert_published_state_dict(published, a0_model)
    wrapped = {'state_dict': {f'module.{k}': v for k, v in published.items()}, 'epoch': 120}
    from_wrapped = convert_published_state_dict(wrapped, a0_model)
    assert from_wrapped.keys() == bare.keys()
    assert all(torch.equal(from_wrapped[k], v) for k, v in bare.items())
    without_buffers = {
        k: v
        for k, v in published.items()
        if not k.endswith(('num_batches_tracked', 'id_tensor', '_avg_avg', '_rbr_prior'))
    }
    converted = convert_published_state_dict(without_buffers, a0_model)
    assert converted.keys() == bare.keys()
    counts = [v for k, v in converted.items() if k.endswith('num_batches_tracked')]
    assert all(c.dtype == torch.long and c.item() == 0 for c in counts)
    a0_model.load_state_dict(converted, strict=True)


@pytest.fixture(scope='module')
def small_published():
    return published_state_dict('repvgg-a0', dtype=torch.float32)


def test_unknown_arch_lists_the_allowed_ones(capsys):
    with pytest.raises(SystemExit):
        parse_args(['src.pth', 'dst.pth', '--arch', 'resnet152'])
    assert re.search(r"--arch: invalid choice: 'resnet152'.*'repvgg-a0'.*'wrn18-2x'",
                     capsys.readouterr().err)


def test_missing_and_unexpected_keys_are_named(small_published, a0_model):
    broken = dict(small_published)
    del broken['stage2.3.rbr_dense.weight_rbr_gconv_pw']
    broken['stage2.3.rbr_dense.weight_rbr_extra'] = torch.zeros(1)
    with pytest.raises(ReparamError) as info:
        convert_published_state_dict(broken, a0_model)
    message = str(info.value)
    assert 'OREPARepVGG' in message
    assert '1 missing key(s): stage2.3.rbr_dense.weight_rbr_gconv_pw' in message
    assert '1 unexpected key(s): stage2.3.rbr_dense.weight_rbr_extra' in message


def test_another_archs_checkpoint_is_refused_by_shape_and_by_name(small_published):
    with pytest.raises(ReparamError, match=r'tensor\(s\) of the wrong shape.*stage0\.'):
        convert_published_state_dict(small_published, build_classifier('repvgg-a1'))
    with pytest.raises(ReparamError) as info:
        convert_published_state_dict(small_published, build_classifier('resnet18'))
    message = str(info.value)
    # Long lists are cut: a dozen names, then a count.
    assert 'missing key(s): stage0.conv1.bn.bias' in message
    assert '... and' in message and 'more' in message


def test_fixed_buffers_unlike_the_published_model_are_refused(small_published, a0_model):
    broken = dict(small_published)
    key = 'stage1.1.rbr_dense.id_tensor'
    broken[key] = torch.zeros_like(broken[key])
    with pytest.raises(ReparamError, match=r'fixed buffer.*stage1\.1\.rbr_dense\.id_tensor'):
        convert_published_state_dict(broken, a0_model)


def test_non_state_dicts_are_refused(a0_model):
    with pytest.raises(ReparamError, match='must be a dict'):
        convert_published_state_dict([1, 2], a0_model)
    with pytest.raises(ReparamError, match="not: 'epoch'|not: epoch"):
        convert_published_state_dict({'epoch': 3}, a0_model)


# ---------------------------------------------------------------------------
# The command line tool.
# ---------------------------------------------------------------------------
def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def published_file(tmp_path_factory, small_published):
    path = tmp_path_factory.mktemp('published') / 'orepa_vgg_a0.pth.tar'
    # As a training script saves it: wrapped, DataParallel-prefixed.
    wrapped = {f'module.{k}': v for k, v in small_published.items()}
    torch.save({'epoch': 120, 'state_dict': wrapped}, path)
    return path


def test_cli_writes_a_checkpoint_only_with_force_over_an_existing_file(
        published_file, small_published, a0_model, tmp_path):
    dst = tmp_path / 'out' / 'orepa-repvgg-a0_in1k.pth'
    dst.parent.mkdir()
    dst.write_bytes(b'keep me')
    refused = run_tool(published_file, dst, '--arch', 'repvgg-a0')
    assert refused.returncode != 0
    assert 'exists' in refused.stderr and '--force' in refused.stderr
    assert dst.read_bytes() == b'keep me'

    done = run_tool(published_file, dst, '--arch', 'repvgg-a0', '--force')
    assert done.returncode == 0, done.stderr
    assert '[1/3]' in done.stdout and '[3/3]' in done.stdout
    expected = convert_published_state_dict(small_published, a0_model)
    assert f'{len(expected)} converted tensors' in done.stdout
    checkpoint = torch.load(dst, weights_only=True)
    assert checkpoint['meta']['arch'] == 'repvgg-a0'
    assert checkpoint['state_dict'].keys() == expected.keys()
    assert all(torch.equal(checkpoint['state_dict'][k], v) for k, v in expected.items())
    assert sorted(os.listdir(dst.parent)) == [dst.name]  # no temporary file left


def test_cli_never_overwrites_its_source(published_file):
    before = published_file.read_bytes()
    same_by_another_name = published_file.parent / '.' / published_file.name
    for extra in ([], ['--force']):
        result = run_tool(published_file, same_by_another_name, '--arch', 'repvgg-a0', *extra)
        assert result.returncode != 0
        assert 'same file as SRC' in result.stderr
    assert published_file.read_bytes() == before


def test_cli_reports_garbage_files_and_writes_nothing(tmp_path):
    src = tmp_path / 'garbage.pth'
    src.write_bytes(os.urandom(4096))
    result = run_tool(src, tmp_path / 'out.pth', '--arch', 'repvgg-a0')
    assert result.returncode != 0
    assert 'cannot read' in result.stderr and 'weights-only' in result.stderr
    assert sorted(os.listdir(tmp_path)) == ['garbage.pth']


def test_truncated_files_are_reported(published_file, tmp_path):
    # In-process: the same loader as the CLI, without a second slow start-up.
    src = tmp_path / 'truncated.pth'
    src.write_bytes(published_file.read_bytes()[:100_000])
    with pytest.raises(ReparamError, match='cannot read.*truncated'):
        read_checkpoint(str(src))


def test_cli_reports_conversion_errors_by_name_and_writes_nothing(small_published, tmp_path):
    src = tmp_path / 'incomplete.pth'
    broken = {k: v for k, v in small_published.items() if k != 'stage3.0.rbr_1x1.bn.bias'}
    torch.save(broken, src)
    result = run_tool(src, tmp_path / 'out.pth', '--arch', 'repvgg-a0')
    assert result.returncode != 0
    assert 'missing key(s): stage3.0.rbr_1x1.bn.bias' in result.stderr
    assert sorted(os.listdir(tmp_path)) == ['incomplete.pth']
