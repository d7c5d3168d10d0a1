"""Convert the authors' published OREPA ImageNet checkpoints to mmorepa's train form.

The published models (method spec, sec. 4 and 5) and mmorepa's train-time
backbones hold the same parameters under other names, and in three places in
another arrangement:

- Linear deep stem: the published code composes its 3x3 generators by
  cross-correlation, mmorepa by true convolution. The two agree when every
  generator after the first is flipped in both spatial axes, so its learned
  spatial kernels are flipped and its prior weights take a per-channel sign.
- Grouped depthwise-separable branches: row ``r`` of the published pointwise
  kernel belongs to output channel ``(r mod g) * O/g + r // g``; rows are
  put in channel order.
- Vector scales: one row per branch in the published order, re-ordered to
  mmorepa's; the unused sixth row of OREPA-VGG blocks with an identity branch
  is dropped.

Fixed buffers (identity, average and prior filters) are checked against the
values mmorepa derives from the shapes, then dropped: mmorepa does not save
them. Everything else is copied unchanged.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ...kernels import frequency_prior
from ...layers import OREPA_BRANCHES, OREPA_VGG_BRANCHES
from ...layers.orepa_branches import SEPARABLE_EXPANSION, WIDE_MIDDLE_ABOVE_GROUPS


@dataclass(frozen=True)
class PublishedArch:
    """One published model and the mmorepa backbone that rebuilds it.

    Args:
        backbone (dict): Backbone config of the mmpretrain ``ImageClassifier``
            (``configs/imagenet/published/orepa-<arch>_in1k.py`` uses the same).
        head_in_channels (int): Input width of the ``LinearClsHead``.
    """
    backbone: dict
    head_in_channels: int


def _resnet(depth: int, **kwargs) -> dict:
    return dict(type='OREPAResNet', depth=depth, out_indices=(3, ), **kwargs)


def _repvgg(arch: str) -> dict:
    return dict(type='OREPARepVGG', arch=arch, out_indices=(3, ))


PUBLISHED_ARCHS: Dict[str, PublishedArch] = {
    'resnet18': PublishedArch(_resnet(18), 512),
    'resnet34': PublishedArch(_resnet(34), 512),
    'resnet50': PublishedArch(_resnet(50), 2048),
    'resnet101': PublishedArch(_resnet(101), 2048),
    # WRN-18-2x doubles every width, the stem's included.
    'wrn18-2x': PublishedArch(_resnet(18, stem_channels=128, base_channels=128), 1024),
    'resnext50': PublishedArch(_resnet(50, groups=32, width_per_group=4), 2048),
    'repvgg-a0': PublishedArch(_repvgg('A0'), 1280),
    'repvgg-a1': PublishedArch(_repvgg('A1'), 1280),
    'repvgg-a2': PublishedArch(_repvgg('A2'), 1408),
}
NUM_CLASSES = 1000

# Published layouts (method spec, sec. 4): blocks per stage.
RESNET_STAGES = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
}
BOTTLENECK_EXPANSION = 4
# OREPA-VGG: blocks per stage and width multipliers (a, a, a, b).
REPVGG_STAGES = {
    'A0': ((2, 4, 14, 1), (0.75, 0.75, 0.75, 2.5)),
    'A1': ((2, 4, 14, 1), (1, 1, 1, 2.5)),
    'A2': ((2, 4, 14, 1), (1.5, 1.5, 1.5, 2.75)),
}
BASE_WIDTH = 64
STEM_KERNEL_SIZE = 7
GENERATOR_KERNEL_SIZE = 3

# Row order of the published `vector` scales (method spec, sec. 3.1 and 3.4).
PUBLISHED_ORDER = ('origin', 'avg', 'prior', '1x1_kxk', '1x1', 'dws')
PUBLISHED_VGG_ORDER = ('origin', 'avg', 'prior', '1x1_kxk', 'dws')
# Fixed buffers are float32 in the published checkpoints; ours are float64.
FIXED_BUFFER_ATOL = 1e-6
# Key lists in error messages are cut after this many names.
MAX_NAMES_SHOWN = 20


@dataclass(frozen=True)
class TensorRule:
    """How one published tensor becomes one of ours.

    Args:
        source (str): Published key.
        target (str, optional): Our key; ``None`` for a fixed buffer, which is
            compared with ``expected`` and dropped.
        shape (tuple[int]): Shape the published tensor must have. A 1x1 kernel
            ``(O, I, 1, 1)`` may also be stored as ``(O, I)``.
        transform (callable, optional): Applied to the published tensor.
        expected (callable, optional): Value a fixed buffer must have.
        default (callable, optional): Makes the target when the source is
            absent; such a source is optional.
    """
    source: str
    target: Optional[str]
    shape: Tuple[int, ...]
    transform: Optional[Callable[[Tensor], Tensor]] = None
    expected: Optional[Callable[[], Tensor]] = None
    default: Optional[Callable[[], Tensor]] = None

    @property
    def optional(self) -> bool:
        # Fixed buffers can be derived, so a checkpoint without them is fine.
        return self.target is None or self.default is not None


def _flip_spatial(kernel: Tensor) -> Tensor:
    return kernel.flip(-2, -1)


def prior_flip_signs(out_channels: int, kernel_size: int) -> Tensor:
    """Signs ``s`` with ``flip(F[o]) == s[o] * F[o]`` for the frequency prior ``F``.

    ``F[o]`` is ``cos(pi * f * (h + 0.5) / k)`` along one axis; ``h -> k-1-h``
    turns it into ``cos(pi * f - ...) = (-1)**f * F[o]`` for integer ``f``,
    which holds for every channel when ``out_channels`` is even.

    Args:
        out_channels (int): Channels of the prior.
        kernel_size (int): Its size.

    Returns:
        Tensor: float64 signs of shape ``(out_channels,)``.

    Raises:
        ValueError: Some channel's flipped filter is not a signed copy of it.
    """
    basis = frequency_prior(out_channels, kernel_size, torch.float64)
    flipped = basis.flip(-2, -1)
    same = (flipped - basis).abs().amax(dim=(1, 2))
    opposite = (flipped + basis).abs().amax(dim=(1, 2))
    signs = torch.where(same <= opposite, 1.0, -1.0).to(torch.float64)
    if (flipped - signs[:, None, None] * basis).abs().max() > 1e-12:
        raise ValueError(f'the frequency prior of out_channels={out_channels} is not '
                         'flip-symmetric up to sign; its stem generator cannot be converted')
    return signs


def _times_prior_signs(out_channels: int) -> Callable[[Tensor], Tensor]:
    signs = prior_flip_signs(out_channels, GENERATOR_KERNEL_SIZE)

    def transform(weight: Tensor) -> Tensor:
        return weight * signs.to(weight.dtype).reshape(-1, 1, 1, 1)

    return transform


def _pointwise_rows_in_channel_order(groups: int) -> Callable[[Tensor], Tensor]:

    def transform(pointwise: Tensor) -> Tensor:
        # Row r = a * g + b holds channel b * O/g + a: read rows as (O/g, g), emit (g, O/g).
        per_group = pointwise.shape[0] // groups
        by_row = pointwise.reshape(per_group, groups, *pointwise.shape[1:])
        return by_row.transpose(0, 1).reshape(pointwise.shape)

    return transform


def _select_rows(rows: Sequence[int]) -> Callable[[Tensor], Tensor]:
    index = torch.tensor(rows)

    def transform(vector: Tensor) -> Tensor:
        return vector.index_select(0, index)

    return transform


def _identity_buffer(middle: int, in_per_group: int) -> Callable[[], Tensor]:

    def make() -> Tensor:
        identity = torch.zeros(middle, in_per_group, 1, 1, dtype=torch.float64)
        rows = torch.arange(middle)
        identity[rows, rows % in_per_group] = 1.0
        return identity

    return make


def _to_count(count: Tensor) -> Tensor:
    return count.to(torch.long)


def _zero_count() -> Tensor:
    return torch.tensor(0, dtype=torch.long)


def _norm_rules(source: str, target: str, channels: int) -> List[TensorRule]:
    """A BatchNorm; a missing ``num_batches_tracked`` is created as 0."""
    rules = [
        TensorRule(f'{source}.{name}', f'{target}.{name}', (channels, ))
        for name in ('weight', 'bias', 'running_mean', 'running_var')
    ]
    rules.append(
        TensorRule(f'{source}.num_batches_tracked', f'{target}.num_batches_tracked', (),
                   transform=_to_count, default=_zero_count))
    return rules


def _orepa_kxk_rules(source: str,
                     target: str,
                     in_channels: int,
                     out_channels: int,
                     groups: int = 1,
                     naming: str = 'orepa',
                     published_order: Sequence[str] = PUBLISHED_ORDER,
                     our_order: Sequence[str] = tuple(OREPA_BRANCHES),
                     vector_rows: Optional[int] = None,
                     flip: bool = False) -> List[TensorRule]:
    """A published OREPA 3x3 block (or stem generator) into a ``BranchSum``.

    Args:
        source (str): Published module path.
        target (str): Our ``BranchSum`` path.
        in_channels, out_channels, groups (int): Geometry of the conv.
        naming (str): ``'orepa'`` (OREPA-ResNet) or ``'rbr'`` (OREPA-VGG), the
            middle of the published parameter names.
        published_order (Sequence[str]): Branches in published vector order.
        our_order (Sequence[str]): Branches in our scale-row order.
        vector_rows (int, optional): Rows of the published vector, when it
            has unused ones. Default: one per branch.
        flip (bool): Flip the generator spatially (stem generators 1, 2, ...).
    """
    k = GENERATOR_KERNEL_SIZE
    out, in_per_group = out_channels, in_channels // groups
    wide = groups > WIDE_MIDDLE_ABOVE_GROUPS
    middle = in_channels * (2 if wide else 1)
    expanded = SEPARABLE_EXPANSION * in_channels
    rows = [published_order.index(name) for name in our_order]
    flip_kernel = _flip_spatial if flip else None

    def published(name: str) -> str:
        return f'{source}.weight_{naming}_{name}'

    rules = [
        TensorRule(f'{source}.vector', f'{target}.scales',
                   (vector_rows or len(published_order), out), _select_rows(rows)),
        TensorRule(published('origin'), f'{target}.origin.weight', (out, in_per_group, k, k),
                   flip_kernel),
        TensorRule(published('avg_conv'), f'{target}.avg.weight', (out, in_per_group, 1, 1)),
        TensorRule(published('avg_avg'), None, (k, k),
                   expected=lambda: torch.full((k, k), 1.0 / k**2, dtype=torch.float64)),
        TensorRule(published('pfir_conv'), f'{target}.prior.weight', (out, in_per_group, 1, 1),
                   _times_prior_signs(out) if flip else None),
        TensorRule(published('prior'), None, (out, k, k),
                   expected=lambda: frequency_prior(out, k, torch.float64)),
        TensorRule(published('1x1_kxk_idconv1'), f'{target}.1x1_kxk.delta',
                   (middle, in_per_group, 1, 1)),
        TensorRule(f'{source}.id_tensor', None, (middle, in_per_group, 1, 1),
                   expected=_identity_buffer(middle, in_per_group)),
        TensorRule(published('1x1_kxk_conv2'), f'{target}.1x1_kxk.conv2',
                   (out, middle // groups, k, k), flip_kernel),
        TensorRule(published('gconv_dw'), f'{target}.dws.depthwise', (expanded, 1, k, k),
                   flip_kernel),
        TensorRule(published('gconv_pw'), f'{target}.dws.pointwise',
                   (out, expanded // groups, 1, 1),
                   _pointwise_rows_in_channel_order(groups) if groups > 1 else None),
    ]
    if '1x1' in our_order:
        # A centred 1x1 kernel is its own flip.
        rules.append(
            TensorRule(published('1x1'), f'{target}.1x1.weight', (out, in_per_group, 1, 1)))
    return rules


def _rep_1x1_rules(source: str, target: str, in_channels: int,
                   out_channels: int) -> List[TensorRule]:
    """A published Rep-1x1 (``OREPA1x1Conv2d``) and its post-norm."""
    middle = min(in_channels, out_channels)
    branches = f'{target}.branches'
    return [
        TensorRule(f'{source}.vector', f'{branches}.scales', (2, out_channels)),
        TensorRule(f'{source}.weight_or1x1_origin', f'{branches}.origin.weight',
                   (out_channels, in_channels, 1, 1)),
        TensorRule(f'{source}.weight_or1x1_l2i_conv1', f'{branches}.1x1_1x1.conv1',
                   (middle, in_channels, 1, 1)),
        TensorRule(f'{source}.weight_or1x1_l2i_conv2', f'{branches}.1x1_1x1.conv2',
                   (out_channels, middle, 1, 1)),
    ]


def _stem_rules(source: str, target: str, in_channels: int,
                out_channels: int) -> List[TensorRule]:
    """The linear deep stem: ``weight0, weight1, ...`` into ``generators.{j}``."""
    num_generators = (STEM_KERNEL_SIZE - 1) // 2
    widths = [in_channels] + [out_channels] * num_generators
    rules = []
    for j in range(num_generators):
        # Published: running kernel cross-correlated with generator j; ours:
        # convolved. Cross-correlating with G equals convolving with flip(G).
        rules += _orepa_kxk_rules(f'{source}.weight{j}', f'{target}.generators.{j}',
                                  widths[j], widths[j + 1], flip=j > 0)
    return rules


def _basic_block_rules(source: str, target: str, in_channels: int, planes: int,
                       stride: int) -> Tuple[List[TensorRule], int]:
    rules = _orepa_kxk_rules(f'{source}.conv1', f'{target}.conv1.branches', in_channels, planes)
    rules += _norm_rules(f'{source}.conv1.bn', f'{target}.bn1', planes)
    rules += _orepa_kxk_rules(f'{source}.conv2', f'{target}.conv2.branches', planes, planes)
    rules += _norm_rules(f'{source}.conv2.bn', f'{target}.bn2', planes)
    if stride != 1 or in_channels != planes:
        rules.append(
            TensorRule(f'{source}.shortcut.conv.weight', f'{target}.downsample.0.weight',
                       (planes, in_channels, 1, 1)))
        rules += _norm_rules(f'{source}.shortcut.bn', f'{target}.downsample.1', planes)
    return rules, planes


def _bottleneck_rules(source: str, target: str, in_channels: int, planes: int, stride: int,
                      groups: int, width_per_group: int,
                      base_channels: int) -> Tuple[List[TensorRule], int]:
    if groups == 1:
        width = planes
    else:
        width = planes * width_per_group // base_channels * groups
    out = planes * BOTTLENECK_EXPANSION
    rules = _rep_1x1_rules(f'{source}.conv1', f'{target}.conv1', in_channels, width)
    rules += _norm_rules(f'{source}.conv1.bn', f'{target}.bn1', width)
    rules += _orepa_kxk_rules(f'{source}.conv2', f'{target}.conv2.branches', width, width,
                              groups)
    rules += _norm_rules(f'{source}.conv2.bn', f'{target}.bn2', width)
    rules += _rep_1x1_rules(f'{source}.conv3', f'{target}.conv3', width, out)
    rules += _norm_rules(f'{source}.conv3.bn', f'{target}.bn3', out)
    if stride != 1 or in_channels != out:
        rules += _rep_1x1_rules(f'{source}.shortcut', f'{target}.downsample.0', in_channels, out)
        rules += _norm_rules(f'{source}.shortcut.bn', f'{target}.downsample.1', out)
    return rules, out


def _resnet_rules(depth: int,
                  stem_channels: int = BASE_WIDTH,
                  base_channels: int = BASE_WIDTH,
                  groups: int = 1,
                  width_per_group: int = 4) -> List[TensorRule]:
    """OREPA-ResNet / WRN / ResNeXt: ``stage0`` stem, ``stage1..4`` blocks."""
    block, stage_blocks = RESNET_STAGES[depth]
    rules = _stem_rules('stage0.conv1', 'backbone.conv1', 3, stem_channels)
    rules += _norm_rules('stage0.conv1.bn', 'backbone.bn1', stem_channels)
    channels = stem_channels
    for stage, num_blocks in enumerate(stage_blocks):
        planes = base_channels * 2**stage
        for index in range(num_blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            names = (f'stage{stage + 1}.{index}', f'backbone.layer{stage + 1}.{index}')
            if block == 'basic':
                block_rules, channels = _basic_block_rules(*names, channels, planes, stride)
            else:
                block_rules, channels = _bottleneck_rules(*names, channels, planes, stride,
                                                          groups, width_per_group,
                                                          base_channels)
            rules += block_rules
    return rules


def _repvgg_block_rules(source: str, target: str, in_channels: int, out_channels: int,
                        stride: int) -> List[TensorRule]:
    """An OREPA-VGG block into mmpretrain's ``RepVGGBlock`` with an OREPA 3x3 conv."""
    has_identity = in_channels == out_channels and stride == 1
    rules = _orepa_kxk_rules(f'{source}.rbr_dense', f'{target}.branch_3x3.conv.branches',
                             in_channels, out_channels, naming='rbr',
                             published_order=PUBLISHED_VGG_ORDER,
                             our_order=OREPA_VGG_BRANCHES,
                             vector_rows=len(PUBLISHED_VGG_ORDER) + has_identity)
    rules += _norm_rules(f'{source}.rbr_dense.bn', f'{target}.branch_3x3.norm', out_channels)
    rules.append(
        TensorRule(f'{source}.rbr_1x1.conv.weight', f'{target}.branch_1x1.conv.weight',
                   (out_channels, in_channels, 1, 1)))
    rules += _norm_rules(f'{source}.rbr_1x1.bn', f'{target}.branch_1x1.norm', out_channels)
    if has_identity:
        rules += _norm_rules(f'{source}.rbr_identity', f'{target}.branch_norm', in_channels)
    return rules


def _repvgg_rules(arch: str) -> List[TensorRule]:
    """OREPA-VGG: ``stage0`` (our ``stem``) and ``stage1..4`` (our ``stage_1..4``)."""
    stage_blocks, width_factors = REPVGG_STAGES[arch]
    channels = min(BASE_WIDTH, int(BASE_WIDTH * width_factors[0]))
    rules = _repvgg_block_rules('stage0', 'backbone.stem', 3, channels, stride=2)
    for stage, (num_blocks, factor) in enumerate(zip(stage_blocks, width_factors)):
        out_channels = int(BASE_WIDTH * 2**stage * factor)
        for index in range(num_blocks):
            rules += _repvgg_block_rules(f'stage{stage + 1}.{index}',
                                         f'backbone.stage_{stage + 1}.{index}', channels,
                                         out_channels, stride=2 if index == 0 else 1)
            channels = out_channels
    return rules


def published_arch(arch: str) -> PublishedArch:
    """The :class:`PublishedArch` named ``arch``.

    Raises:
        ValueError: ``arch`` is not one of ``PUBLISHED_ARCHS``; the message lists them.
    """
    if arch not in PUBLISHED_ARCHS:
        raise ValueError(f'arch must be one of {tuple(PUBLISHED_ARCHS)}, got {arch!r}')
    return PUBLISHED_ARCHS[arch]


def published_rules(arch: str) -> List[TensorRule]:
    """Every rule of the published model ``arch``, head included."""
    spec = published_arch(arch)
    kwargs = {k: v for k, v in spec.backbone.items() if k not in ('type', 'out_indices')}
    if spec.backbone['type'] == 'OREPAResNet':
        rules = _resnet_rules(**kwargs)
    else:
        rules = _repvgg_rules(**kwargs)
    channels = spec.head_in_channels
    rules.append(TensorRule('linear.weight', 'head.fc.weight', (NUM_CLASSES, channels)))
    rules.append(TensorRule('linear.bias', 'head.fc.bias', (NUM_CLASSES, )))
    return rules


def unwrap_published_state_dict(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The published state dict, bare or under ``'state_dict'``, without ``module.``.

    Raises:
        TypeError: ``checkpoint`` is not a mapping, or holds non-tensor values.
        ValueError: Two keys are the same after removing ``module.``.
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'checkpoint must be a dict (a state dict, or one under '
                        f"'state_dict'), got {type(checkpoint).__name__}")
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"checkpoint['state_dict'] must be a dict, got "
                        f'{type(state_dict).__name__}')
    not_tensors = [str(key) for key, value in state_dict.items() if not torch.is_tensor(value)]
    if not_tensors:
        raise TypeError(f'state dict values must be tensors; {len(not_tensors)} are not: '
                        f'{_names(not_tensors)}')
    unwrapped = {}
    for key, value in state_dict.items():
        # DataParallel / DistributedDataParallel wrappers save this prefix.
        name = key[len('module.'):] if key.startswith('module.') else key
        if name in unwrapped:
            raise ValueError(f"state dict has {name!r} both with and without 'module.'")
        unwrapped[name] = value
    return unwrapped


def _names(names: Sequence[str]) -> str:
    shown = ', '.join(names[:MAX_NAMES_SHOWN])
    hidden = len(names) - MAX_NAMES_SHOWN
    return shown + (f', ... and {hidden} more' if hidden > 0 else '')


def _fit_shape(tensor: Tensor, shape: Tuple[int, ...]) -> Optional[Tensor]:
    """``tensor`` in ``shape``, accepting ``(O, I)`` for a 1x1 kernel; else None."""
    if tuple(tensor.shape) == shape:
        return tensor
    if len(shape) == 4 and shape[2:] == (1, 1) and tuple(tensor.shape) == shape[:2]:
        return tensor.reshape(shape)
    return None


def _problem_report(arch: str, missing: List[str], unexpected: List[str],
                    misshapen: List[str], wrong_buffers: List[str], matched: int) -> str:
    parts = []
    if missing:
        parts.append(f'{len(missing)} missing key(s): {_names(missing)}')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected key(s): {_names(unexpected)}')
    if misshapen:
        parts.append(f'{len(misshapen)} tensor(s) of the wrong shape (another arch?): '
                     f'{_names(misshapen)}')
    if wrong_buffers:
        parts.append(f'{len(wrong_buffers)} fixed buffer(s) unlike the published model: '
                     f'{_names(wrong_buffers)}')
    if not matched:
        parts.append('no key matches the published train-form layout: is this an OREPA '
                     'checkpoint before deployment?')
    return f'checkpoint does not match the published OREPA model {arch!r}:\n  ' + \
        '\n  '.join(parts)


def convert_published_state_dict(checkpoint: Mapping, arch: str) -> Dict[str, Tensor]:
    """Convert a published OREPA checkpoint to an mmpretrain classifier's state dict.

    The result loads with ``strict=True`` into the ``ImageClassifier`` of
    ``configs/imagenet/published/orepa-<arch>_in1k.py`` (keys ``backbone.*``,
    ``head.fc.*``) and computes the published model's outputs. Values keep
    their dtype; unchanged tensors share memory with the input.

    Args:
        checkpoint (Mapping): The published state dict, bare or under
            ``'state_dict'``; keys may start with ``module.``.
        arch (str): One of ``PUBLISHED_ARCHS``.

    Returns:
        dict[str, Tensor]: The converted state dict.

    Raises:
        ValueError: ``arch`` is unknown, or keys are missing, unexpected, of
            the wrong shape, or fixed buffers differ; all are named.
        TypeError: ``checkpoint`` is not a state dict of tensors.
    """
    rules = published_rules(arch)
    source = unwrap_published_state_dict(checkpoint)
    known = {rule.source for rule in rules}
    missing, misshapen, wrong_buffers = [], [], []
    converted = {}
    for rule in rules:
        if rule.source not in source:
            if not rule.optional:
                missing.append(rule.source)
            elif rule.default is not None:
                converted[rule.target] = rule.default()
            continue
        tensor = _fit_shape(source[rule.source], rule.shape)
        if tensor is None:
            misshapen.append(f'{rule.source} {tuple(source[rule.source].shape)} '
                             f'(expected {rule.shape})')
        elif rule.target is None:
            expected = rule.expected()
            if (tensor.to(expected.dtype) - expected).abs().max() > FIXED_BUFFER_ATOL:
                wrong_buffers.append(rule.source)
        else:
            converted[rule.target] = tensor if rule.transform is None else rule.transform(tensor)
    unexpected = sorted(key for key in source if key not in known)
    matched = len(source) - len(unexpected)
    if missing or unexpected or misshapen or wrong_buffers or not matched:
        raise ValueError(
            _problem_report(arch, missing, unexpected, misshapen, wrong_buffers, matched))
    return converted
