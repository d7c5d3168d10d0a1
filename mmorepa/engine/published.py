"""Convert the authors' published OREPA ImageNet checkpoints to mmorepa's train form.

The converter is driven by the target model, built from its config in
``configs/imagenet/published/``: which keys to fill, their shapes, groups and
fixed buffers all come from it. Written here is only what the model cannot
know: where each of its tensors sits in a published checkpoint, and three
real transforms (docs/method.md):

- Linear deep stem: the published code composes its 3x3 generators by
  cross-correlation, mmorepa by true convolution. The two agree when every
  generator after the first is flipped in both spatial axes, so its learned
  spatial kernels are flipped and its prior weights take the sign with which
  the flipped prior filter equals the filter.
- Grouped depthwise-separable branches: row ``r`` of the published pointwise
  kernel belongs to output channel ``(r mod g) * O/g + r // g``.
- Vector scales: rows in the same branch order as ours; OREPA-VGG blocks with
  an identity branch store a sixth, unused row, which is dropped.

Published fixed buffers (identity, average and prior filters) are checked
against the model's and dropped: mmorepa derives them from the shapes.
"""
import re
from typing import Dict, Mapping

import torch
from torch import Tensor, nn

from ..layers import BranchSum
from ..utils import name_list
from .errors import ReparamError

# Our module paths -> published ones, applied in order.
RESNET_PATHS = (
    (r'^backbone\.conv1\.generators\.(\d+)\.', r'stage0.conv1.weight\1.'),
    (r'^backbone\.bn1\.', 'stage0.conv1.bn.'),
    (r'^backbone\.layer(\d)\.(\d+)\.bn(\d)\.', r'stage\1.\2.conv\3.bn.'),
    (r'^backbone\.layer(\d)\.(\d+)\.conv(\d)\.branches\.', r'stage\1.\2.conv\3.'),
    (r'^backbone\.layer(\d)\.(\d+)\.downsample\.0\.branches\.', r'stage\1.\2.shortcut.'),
    (r'^backbone\.layer(\d)\.(\d+)\.downsample\.0\.', r'stage\1.\2.shortcut.conv.'),
    (r'^backbone\.layer(\d)\.(\d+)\.downsample\.1\.', r'stage\1.\2.shortcut.bn.'),
)
VGG_PATHS = (
    (r'^backbone\.stem\.', 'stage0.'),
    (r'^backbone\.stage_(\d)\.(\d+)\.', r'stage\1.\2.'),
    (r'\.branch_3x3\.norm\.', '.rbr_dense.bn.'),
    (r'\.branch_3x3\.conv\.branches\.', '.rbr_dense.'),
    (r'\.branch_1x1\.norm\.', '.rbr_1x1.bn.'),
    (r'\.branch_1x1\.conv\.', '.rbr_1x1.conv.'),
    (r'\.branch_norm\.', '.rbr_identity.'),
)
HEAD_PATHS = ((r'^head\.fc\.', 'linear.'), )
# Inside a branch sum: our name -> the published one ('{}' is 'orepa' in
# OREPA-ResNet, 'rbr' in OREPA-VGG).
OREPA_NAMES = {
    'scales': 'vector', 'origin.weight': 'weight_{}_origin', 'avg.weight': 'weight_{}_avg_conv',
    'prior.weight': 'weight_{}_pfir_conv', '1x1_kxk.delta': 'weight_{}_1x1_kxk_idconv1',
    '1x1_kxk.conv2': 'weight_{}_1x1_kxk_conv2', '1x1.weight': 'weight_{}_1x1',
    'dws.depthwise': 'weight_{}_gconv_dw', 'dws.pointwise': 'weight_{}_gconv_pw',
}
REP_1X1_NAMES = {
    'scales': 'vector', 'origin.weight': 'weight_or1x1_origin',
    '1x1_1x1.conv1': 'weight_or1x1_l2i_conv1', '1x1_1x1.conv2': 'weight_or1x1_l2i_conv2',
}
# Published fixed buffers of an OREPA branch sum -> our buffer ('' = the
# average filter, a constant).
OREPA_BUFFERS = {'weight_{}_avg_avg': '', 'id_tensor': '1x1_kxk.identity',
                 'weight_{}_prior': 'prior.basis'}
# The published buffers are float32: compared with ours to this tolerance.
FIXED_BUFFER_ATOL = 1e-6
FLIPPED = ('origin.weight', '1x1_kxk.conv2', 'dws.depthwise')
STEM_GENERATOR = re.compile(r'^backbone\.conv1\.generators\.([1-9]\d*)$')


def unwrap(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The published state dict, bare or under ``'state_dict'``, without ``module.``.

    Raises:
        ReparamError: Not a dict of tensors.
    """
    if not isinstance(checkpoint, Mapping):
        raise ReparamError(f'checkpoint must be a dict (a state dict, or one under '
                           f"'state_dict'), got {type(checkpoint).__name__}")
    state_dict = checkpoint.get('state_dict', checkpoint)
    not_tensors = [str(key) for key, value in state_dict.items() if not torch.is_tensor(value)]
    if not_tensors:
        raise ReparamError(f'state dict values must be tensors; {len(not_tensors)} are not: '
                           f'{name_list(not_tensors)}')
    return {key[len('module.'):] if key.startswith('module.') else key: value
            for key, value in state_dict.items()}


class _Layout:
    """Where each tensor of ``model`` sits in a published checkpoint."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.vgg = hasattr(model.backbone, 'stem')
        self.paths = (VGG_PATHS if self.vgg else RESNET_PATHS) + HEAD_PATHS
        self.branch_sums = {name: module for name, module in model.named_modules()
                            if isinstance(module, BranchSum)}

    def published_path(self, path: str) -> str:
        for pattern, replacement in self.paths:
            path = re.sub(pattern, replacement, path)
        return path

    def published_names(self, branch_sum: str) -> Dict[str, str]:
        """Our names inside ``branch_sum`` -> published keys (buffers: the reverse)."""
        prefix = self.published_path(f'{branch_sum}.')
        if '1x1_1x1' in self.branch_sums[branch_sum]:
            return {ours: prefix + theirs for ours, theirs in REP_1X1_NAMES.items()}
        naming = 'rbr' if self.vgg else 'orepa'
        return {ours: prefix + theirs.format(naming) for ours, theirs in OREPA_NAMES.items()}

    def published_key(self, key: str) -> str:
        module, _, _ = key.rpartition('.')
        while module and module not in self.branch_sums:
            module = module.rpartition('.')[0]
        if not module:
            return self.published_path(key)
        return self.published_names(module)[key[len(module) + 1:]]

    def fixed_buffers(self) -> Dict[str, Tensor]:
        """Published fixed-buffer key -> the value it must have."""
        buffers = dict(self.model.named_buffers())
        expected = {}
        for name, branch_sum in self.branch_sums.items():
            if 'avg' not in branch_sum:
                continue
            prefix = self.published_path(f'{name}.')
            naming = 'rbr' if self.vgg else 'orepa'
            for theirs, ours in OREPA_BUFFERS.items():
                size = branch_sum['avg'].kernel_size
                value = buffers[f'{name}.{ours}'] if ours else torch.full(
                    (size, size), 1.0 / size**2)
                expected[prefix + theirs.format(naming)] = value
        return expected

    def transform(self, key: str, tensor: Tensor, target: Tensor) -> Tensor:
        module, _, leaf = key.rpartition('.')
        if key.endswith('.scales'):
            return tensor[:target.shape[0]]
        tensor = tensor.reshape(target.shape) if tensor.numel() == target.numel() else tensor
        branch_sum = key.rsplit('.', 2)[0]
        if STEM_GENERATOR.match(branch_sum):
            # Cross-correlating with G is convolving with flip(G).
            if key.endswith(FLIPPED):
                tensor = tensor.flip(-2, -1)
            elif key.endswith('prior.weight'):
                basis = self.model.get_submodule(module).basis.double()
                same = (basis.flip(-2, -1) - basis).abs().amax((1, 2)) < 1e-12
                tensor = tensor * torch.where(same, 1.0, -1.0).to(tensor).reshape(-1, 1, 1, 1)
        if key.endswith('dws.pointwise'):
            groups = self.model.get_submodule(module).groups
            # Row r = a * g + b holds channel b * O/g + a: read rows as (O/g, g).
            tensor = tensor.reshape(-1, groups, *tensor.shape[1:]).transpose(0, 1).reshape(
                tensor.shape)
        return tensor


def convert_published_state_dict(checkpoint: Mapping, model: nn.Module) -> Dict[str, Tensor]:
    """Convert a published OREPA checkpoint into the state dict of ``model``.

    Args:
        checkpoint (Mapping): The published state dict, bare or under
            ``'state_dict'``; keys may start with ``module.``.
        model (nn.Module): The classifier of the matching config in
            ``configs/imagenet/published/`` (keys ``backbone.*``, ``head.fc.*``).

    Returns:
        dict[str, Tensor]: Loads with ``strict=True`` into ``model`` and computes
        the published model's outputs. Values keep their dtype; a published
        checkpoint without ``num_batches_tracked`` gets zeros.

    Raises:
        ReparamError: Published keys are missing or unexpected, tensors have
            another shape, or fixed buffers differ; all are named.
    """
    source = unwrap(checkpoint)
    layout = _Layout(model)
    converted, missing, misshapen = {}, [], []
    for key, target in model.state_dict().items():
        published = layout.published_key(key)
        if published not in source:
            if key.endswith('num_batches_tracked'):
                converted[key] = torch.zeros_like(target)
            else:
                missing.append(published)
            continue
        tensor = layout.transform(key, source[published], target)
        if tensor.shape != target.shape:
            misshapen.append(f'{published} {tuple(source[published].shape)} (needs '
                             f'{tuple(target.shape)})')
        converted[key] = tensor.long() if key.endswith('num_batches_tracked') else tensor
    buffers = layout.fixed_buffers()
    wrong_buffers = [key for key, value in buffers.items() if key in source and (
        source[key].shape != value.shape
        or (source[key].double() - value.double()).abs().max() > FIXED_BUFFER_ATOL)]
    consumed = {layout.published_key(key) for key in converted} | set(buffers)
    unexpected = [key for key in source if key not in consumed]
    problems = [f'{len(found)} {what}: {name_list(found)}' for what, found in (
        ('missing key(s)', missing), ('unexpected key(s)', unexpected),
        ('tensor(s) of the wrong shape (another arch?)', misshapen),
        ('fixed buffer(s) unlike the published model', wrong_buffers)) if found]
    if problems:
        raise ReparamError(f'checkpoint does not match the published model of this config '
                           f'({type(model.backbone).__name__}): ' + '; '.join(problems))
    return converted
