"""Starting a re-param backbone from a checkpoint of either form, exactly.

A re-param backbone's checkpoint comes in two forms: its own train form (every
branch) and the stock form it squeezes to (a torchvision / open-mmlab /
mmpretrain ResNet, an mmorepa deploy export). Train-form weights load as
they are. Stock weights are solved into the branches: every re-param layer
takes the stock kernel through ``set_squeezed_kernel`` (one branch solved,
the others keep their random starts; :class:`ReparamConv2d` does this itself
for every loader), every other tensor is copied, so the backbone starts as
exactly the stock network. Here the backbone as a whole is checked first, so
that a checkpoint fitting neither form is refused with all its missing keys
named, and a DBB's absent norm is fused into its conv.
"""
from typing import Dict, List, Optional, Set

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from ..kernels import fuse_conv_bn
from ..layers import AbsentNorm, ReparamConv2d, conv_norm_pairs
from ..layers.base import OPTIONAL_KEY_SUFFIX
from ..utils import name_list

# Older checkpoints (torchvision's among them) predate this BatchNorm buffer;
# BatchNorm itself accepts its absence.
OPTIONAL_SUFFIX = f'.{OPTIONAL_KEY_SUFFIX}'
NORM_KEYS = ('weight', 'bias', 'running_mean', 'running_var')


class _StockLayout:
    """Which stock key feeds which part of a re-param backbone.

    Args:
        backbone (nn.Module): The re-param backbone.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.layers = {name: module for name, module in backbone.named_modules()
                       if isinstance(module, ReparamConv2d)}
        # The norm place each layer's squeezed bias goes into, where it has one.
        self.absent_norms = {
            norm_name: conv_name
            for (conv_name, conv), (norm_name, norm) in conv_norm_pairs(backbone)
            if conv_name in self.layers and isinstance(norm, AbsentNorm)
        }
        inside = tuple(f'{name}.' for name in self.layers)
        self.plain = [key for key in backbone.state_dict() if not key.startswith(inside)]
        self.required = set(self.plain) | {f'{name}.weight' for name in self.layers}
        self.required |= {f'{norm}.{key}' for norm in self.absent_norms for key in NORM_KEYS}
        self.allowed = self.required | {f'{name}.bias' for name in self.layers}
        self.allowed |= {f'{norm}{OPTIONAL_SUFFIX}' for norm in self.absent_norms}

    def missing(self, keys: Set[str]) -> List[str]:
        return [key for key in self.required - keys if not key.endswith(OPTIONAL_SUFFIX)]

    @torch.no_grad()
    def load(self, backbone: nn.Module, state_dict: Dict[str, Tensor]) -> None:
        # Each re-param layer solves itself from the stock conv it is given
        # (ReparamConv2d loads either form); a DBB, which replaces a conv *and*
        # its norm, is given that pair fused into one conv with bias.
        given = {key: state_dict[key] for key in self.allowed if key in state_dict}
        for norm_name, conv_name in self.absent_norms.items():
            kernel = given[f'{conv_name}.weight']
            norm = _norm_from(given, norm_name, kernel)
            kernel, bias = fuse_conv_bn(kernel.double(), _double(given.get(f'{conv_name}.bias')),
                                        norm)
            given[f'{conv_name}.weight'], given[f'{conv_name}.bias'] = kernel, bias
            for key in NORM_KEYS + (OPTIONAL_KEY_SUFFIX, ):
                given.pop(f'{norm_name}.{key}', None)
        backbone.load_state_dict(given, strict=False)


def _double(tensor: Optional[Tensor]) -> Optional[Tensor]:
    return None if tensor is None else tensor.double()


def _norm_from(state_dict: Dict[str, Tensor], name: str, like: Tensor) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(like.shape[0], dtype=torch.float64).eval()
    for key in NORM_KEYS:
        getattr(norm, key).copy_(state_dict[f'{name}.{key}'])
    return norm


def _check_shapes(backbone: nn.Module, state_dict: Dict[str, Tensor], keys) -> None:
    own = backbone.state_dict()
    wrong = [f'{key} {tuple(state_dict[key].shape)} (needs {tuple(own[key].shape)})'
             for key in keys if key in own and state_dict[key].shape != own[key].shape]
    if wrong:
        raise ValueError(f'{len(wrong)} tensor(s) of the wrong shape (another architecture?): '
                         f'{name_list(wrong)}')


def load_state_dict_any_form(backbone: nn.Module, state_dict: Dict[str, Tensor],
                             source: str = 'the checkpoint') -> str:
    """Load train-form or stock-form weights into a re-param backbone.

    Keys that belong to neither form (a classifier head's ``fc.*`` in a
    torchvision checkpoint) are ignored and logged, as the stock backbones
    do; a missing key is an error.

    Args:
        backbone (nn.Module): A re-param backbone (or any module).
        state_dict (dict[str, Tensor]): The weights, keys relative to the backbone.
        source (str): Names the weights in messages.

    Returns:
        str: ``'train form'`` or ``'stock form'``.

    Raises:
        ValueError: The weights fit neither form; missing and unexpected keys
            (or wrong shapes) are named.
    """
    keys = set(state_dict)
    own = set(backbone.state_dict())
    train_missing = [key for key in own - keys if not key.endswith(OPTIONAL_SUFFIX)]
    layout = _StockLayout(backbone)
    stock_missing = layout.missing(keys)
    if not train_missing:
        form, expected = 'train form', own
        _check_shapes(backbone, state_dict, own & keys)
        backbone.load_state_dict({k: state_dict[k] for k in own & keys}, strict=False)
    elif not stock_missing:
        form, expected = 'stock form', layout.allowed
        _check_shapes(backbone, state_dict, set(layout.plain) & keys)
        layout.load(backbone, state_dict)
    else:
        closer = 'stock' if len(stock_missing) < len(train_missing) else 'train'
        missing = stock_missing if closer == 'stock' else train_missing
        expected = layout.allowed if closer == 'stock' else own
        unexpected = keys - expected
        hint = ''
        if unexpected and all(key.startswith('backbone.') for key in unexpected):
            hint = " (its keys start with 'backbone.': give prefix='backbone.')"
        raise ValueError(
            f'{source} fits neither the train form nor the stock form of '
            f'{type(backbone).__name__}{hint}. Closest is the {closer} form, which misses '
            f'{len(missing)} key(s): {name_list(missing)}; unexpected: '
            f'{len(unexpected)} key(s): {name_list(unexpected) or "none"}')
    ignored = keys - set(expected)
    if ignored:
        print_log(f'{source}: {len(ignored)} key(s) outside the backbone ignored: '
                  f'{name_list(ignored)}', logger='current')
    return form


def load_pretrained(backbone: nn.Module, checkpoint: str, prefix: Optional[str] = None,
                    map_location: str = 'cpu') -> str:
    """``init_cfg=dict(type='Pretrained', ...)`` for a re-param backbone, exactly.

    Reads ``checkpoint`` from any location mmengine knows (a path, a URL,
    ``torchvision://``, ``open-mmlab://``) with torch's weights-only
    unpickler, keeps the keys under ``prefix`` (stripped), drops a
    ``module.`` prefix, and loads them with :func:`load_state_dict_any_form`.

    Returns:
        str: The form that was loaded.
    """
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
    state_dict = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else loaded
    state_dict = {(k[len('module.'):] if k.startswith('module.') else k): v
                  for k, v in state_dict.items()}
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    form = load_state_dict_any_form(backbone, state_dict, source=checkpoint)
    print_log(f'{type(backbone).__name__} initialized from {checkpoint} ({form})',
              logger='current')
    return form
