"""``unsqueeze``: turn the convs of any built model into OREPA layers, exactly.

The inverse of :func:`mmorepa.reparameterize`. Every eligible ``nn.Conv2d`` of
any ``nn.Module`` (an mm backbone, a timm or torchvision model) is replaced by
the layer the ``'OREPA'`` conv type builds for its shape, started from that
conv's current weights through :meth:`ReparamConv2d.set_squeezed_kernel`, so
the returned model computes what the given one computes and squeezes back to
its state dict.
"""
import copy
import re
from typing import Callable, Dict, Optional, Sequence

from mmengine.logging import print_log
from torch import nn

from ..utils import check_choice, name_list
from .base import ReparamConv2d
from .factory import build_orepa_conv
from .squeeze import Squeezable, set_submodule
from .stock_conv import is_plain_conv, template_refusal

#: Kinds of conv ``unsqueeze`` can convert; all are converted by default
#: (docs/backbones.md gives the measured cost of each).
CONV_KINDS = ('kxk', 'grouped', 'depthwise', '1x1')
#: Conv types ``unsqueeze`` builds, by ``reparam``.
UNSQUEEZE_BUILDERS: Dict[str, Callable[..., nn.Module]] = {'orepa': build_orepa_conv}


def conv_kind(conv: nn.Conv2d) -> str:
    """``'1x1'`` (dense 1x1), ``'depthwise'`` (one group per input channel),
    ``'grouped'`` (any other grouped conv, 1x1 too) or ``'kxk'`` (dense,
    larger kernel)."""
    if conv.groups == 1:
        return '1x1' if conv.kernel_size == (1, 1) else 'kxk'
    return 'depthwise' if conv.groups == conv.in_channels else 'grouped'


def refusal(conv: nn.Conv2d) -> Optional[str]:
    """Why an OREPA layer cannot stand in for ``conv`` exactly, or None."""
    size = conv.kernel_size
    if size[0] != size[1]:
        return f'non-square kernel {size}'
    if size[0] % 2 == 0:
        return f'even kernel {size[0]}x{size[0]} (OREPA kernels are odd)'
    if is_plain_conv(conv):
        return None
    return template_refusal(conv)


def _build_layer(conv: nn.Conv2d, builder, layer_cfg: dict) -> Optional[ReparamConv2d]:
    layer = builder(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride,
                    conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                    **layer_cfg)
    if not isinstance(layer, ReparamConv2d):
        return None  # the conv type keeps this shape plain (e.g. rep_1x1=False)
    if not is_plain_conv(conv):
        layer.convolve_like(conv)
    weight = conv.weight
    layer = layer.to(device=weight.device, dtype=weight.dtype).train(conv.training)
    layer.set_squeezed_kernel(weight.detach(), None if conv.bias is None else conv.bias.detach())
    return layer.requires_grad_(weight.requires_grad)


def unsqueeze(model: nn.Module,
              reparam: str = 'orepa',
              inplace: bool = False,
              convs: Sequence[str] = CONV_KINDS,
              exclude: Sequence[str] = (),
              **layer_cfg) -> nn.Module:
    """Replace the convs of a model by re-param layers equal to them.

    Converted: square odd-kernel convs of the kinds in ``convs``, of any
    stride, dilation and bias. A conv of another class than
    ``nn.Conv2d`` or another ``padding_mode`` is converted when its only state
    is a weight and a bias: the layer then convolves through that conv's own
    forward (:mod:`mmorepa.layers.stock_conv`). Every other conv is left as it
    is, and one log line names those left and why. Convs inside re-param
    layers are not touched, so running it again changes nothing.

    Args:
        model (nn.Module): Any built model.
        reparam (str): The re-param layer: ``'orepa'`` (the ``'OREPA'`` conv type).
        inplace (bool): Convert ``model`` itself instead of a deep copy.
            Default: False.
        convs (Sequence[str]): Kinds to convert, a subset of
            ``('kxk', 'grouped', 'depthwise', '1x1')`` (see :func:`conv_kind`).
            Default: all.
        exclude (Sequence[str]): Regular expressions; a conv whose full module
            name matches one (``re.search``) is left plain.
        **layer_cfg: Arguments of the conv type (``branches``, ``scaling``,
            ``rep_1x1``, ``linear_stem``).

    Returns:
        nn.Module: The model with re-param layers; its outputs equal the given
        model's (to float rounding) and
        ``reparameterize(unsqueeze(m))`` has ``m``'s state-dict keys and values.

    Raises:
        ValueError: An argument outside its allowed values, or a layer that
            cannot hold its conv's kernel (the message names it).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    builder = UNSQUEEZE_BUILDERS[check_choice('reparam', reparam, UNSQUEEZE_BUILDERS)]
    if isinstance(convs, str):
        raise TypeError(f'convs must be a sequence of kinds from {CONV_KINDS}, got {convs!r}')
    for kind in convs:
        check_choice('convs', kind, CONV_KINDS)
    patterns = [re.compile(pattern) for pattern in exclude]
    if not inplace:
        model = copy.deepcopy(model)
    inside_reparam = set()
    left_plain, converted = {}, 0
    for name, module in list(model.named_modules()):
        if name.startswith(tuple(inside_reparam)):
            continue
        if isinstance(module, Squeezable):
            inside_reparam.add(f'{name}.' if name else '')
            continue
        if not isinstance(module, nn.Conv2d):
            continue
        reason = refusal(module)
        if reason is None and conv_kind(module) not in convs:
            reason = f'{conv_kind(module)} (not in convs)'
        if reason is None and any(p.search(name) for p in patterns):
            reason = 'excluded'
        if reason is not None:
            left_plain[name] = reason
            continue
        try:
            layer = _build_layer(module, builder, layer_cfg)
        except ValueError as error:
            raise ValueError(f'{name} ({module}): {error}') from error
        if layer is None:
            left_plain[name] = f'kept plain by the {reparam!r} conv type'
            continue
        if name:
            set_submodule(model, name, layer)
        else:
            model = layer
        converted += 1
    reasons = {}
    for name, reason in left_plain.items():
        reasons.setdefault(reason, []).append(name or '<model>')
    summary = ''.join(f'; {reason}: {name_list(names)}' for reason, names in reasons.items())
    print_log(f'unsqueeze: {converted} conv(s) converted to {reparam}, '
              f'{len(left_plain)} left plain{summary}', logger='current')
    return model
