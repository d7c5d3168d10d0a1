"""Checking OREPA inside any backbone, neck or head: the stock start and the
squeeze, measured.

For a stock module config (or a built model) the OREPA version is built the
way a user builds it (a re-param ``conv_cfg``, the ``OREPABackbone`` or
``OREPAModule`` wrapper, or :func:`mmorepa.unsqueeze`), started from a stock
checkpoint through ``init_cfg=dict(type='Pretrained')``, and compared with
the stock network; then its branches are moved off their start, it is
squeezed, the squeezed state dict is loaded strictly into the stock module of
the deploy config, and the two are compared again.
``tools/analysis/backbone_matrix.py`` prints the tables of docs/backbones.md
and docs/necks_heads.md from these checks.
"""
import inspect
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from ..layers import ReparamConv2d, reparameterize, unsqueeze
from ..utils import check_choice
from .configs import stock_model_config
from .deploy import relative_difference

#: How a user puts OREPA into a module.
ROUTES = ('conv_cfg', 'wrapper', 'module', 'unsqueeze')
#: Strides of the feature maps a neck or head is fed, finest first.
FEATURE_STRIDES = (4, 8, 16, 32, 64)


@dataclass
class BackboneCheck:
    """What :func:`check_backbone` measured.

    Args:
        converted (int): Re-param layers in the OREPA backbone.
        convs (int): Convs in the stock backbone.
        start_error (float): Relative output difference between the stock
            network and the OREPA one started from its checkpoint.
        squeeze_error (float): Relative output difference between the OREPA
            network (branches moved off their start) and the stock backbone
            loaded strictly with its squeezed state dict.
    """
    converted: int
    convs: int
    start_error: float
    squeeze_error: float


def stock_conv_cfg(backbone_type: type) -> Optional[dict]:
    """The ``conv_cfg`` a backbone class uses by default (None: ``nn.Conv2d``)."""
    parameter = inspect.signature(backbone_type).parameters.get('conv_cfg')
    default = None if parameter is None else parameter.default
    return default if isinstance(default, dict) else None


def orepa_config(stock: dict, route: str, scope: str) -> dict:
    """The OREPA version of a stock backbone config, by ``route``.

    ``'conv_cfg'`` sets ``conv_cfg=dict(type='OREPA')``, with the backbone's
    own default conv as ``stock_conv_cfg`` where it has one (EfficientNet's
    ``Conv2dAdaptivePadding``); ``'wrapper'`` wraps it in ``OREPABackbone``,
    ``'module'`` in ``OREPAModule``.
    """
    check_choice('route', route, ROUTES[:3])
    if route == 'wrapper':
        return dict(type='OREPABackbone', backbone=stock)
    if route == 'module':
        return dict({key: value for key, value in stock.items() if key != 'type'},
                    type='OREPAModule', module_type=stock['type'])
    with MODELS.switch_scope_and_registry(scope) as registry:
        default = stock_conv_cfg(registry.get(stock['type']))
    conv_cfg = dict(type='OREPA')
    if stock.get('conv_cfg', default) is not None:
        conv_cfg['stock_conv_cfg'] = stock.get('conv_cfg', default)
    return dict(stock, conv_cfg=conv_cfg)


def _randomize(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Random BN statistics and affine terms, and (in OREPA layers) random branch
    scales: every branch then shows in the squeezed kernel."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                    module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
        for name, param in model.named_parameters():
            if name.endswith('.scales'):
                param.mul_(1 + 0.2 * torch.randn(param.shape, generator=generator).to(param))
    return model


def _compare(stock: nn.Module, other: nn.Module, inputs: torch.Tensor) -> float:
    # Not `model.eval()(x)`: some stock backbones' train() returns None.
    stock.eval()
    other.eval()
    with torch.no_grad():
        return relative_difference(stock(inputs), other(inputs))


def _count(model: nn.Module, kind) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def _inputs(size, dtype, generator, channels: Optional[Sequence[int]]):
    """An image batch, or (``channels``) feature maps at :data:`FEATURE_STRIDES`."""
    if channels is None:
        return torch.randn(2, 3, *size, generator=generator).to(dtype)
    return [torch.randn(2, count, *(max(side // stride, 1) for side in size),
                        generator=generator).to(dtype)
            for count, stride in zip(channels, FEATURE_STRIDES)]


def check_backbone(stock: dict, route: str, scope: str, size=(64, 64),
                   dtype: torch.dtype = torch.float32, seed: int = 0,
                   channels: Optional[Sequence[int]] = None) -> BackboneCheck:
    """Build the OREPA version of the stock module ``stock`` (a backbone, or a
    neck or head with ``channels``) and measure it.

    Args:
        stock (dict): Config of a stock module in ``scope``.
        route (str): ``'conv_cfg'``, ``'wrapper'`` or ``'module'`` (see
            :func:`orepa_config`).
        scope (str): ``'mmpretrain'``, ``'mmdet'`` or ``'mmseg'``.
        size (tuple[int, int]): Input height and width (of the image the
            feature maps come from, for a neck or head).
        dtype (torch.dtype): Precision of both networks and the checkpoint.
        seed (int): Seed of the weights, statistics and input.
        channels (Sequence[int], optional): The module takes a list of feature
            maps with these channels, at :data:`FEATURE_STRIDES`. Default:
            None (an image batch).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope), tempfile.TemporaryDirectory() as folder:
        reference = MODELS.build(dict(stock)).to(dtype)
        if hasattr(reference, 'init_weights'):
            # Its own start (in dtype): a module that sets some weights after
            # loading a checkpoint (YOLOXHead's prior biases) then sets what it holds.
            reference.init_weights()
        reference = _randomize(reference, generator)
        checkpoint = os.path.join(folder, 'stock.pth')
        torch.save(dict(state_dict=reference.state_dict()), checkpoint)
        trained_cfg = orepa_config(dict(stock), route, scope)
        inner = trained_cfg.get('backbone', trained_cfg)
        inner['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
        model = MODELS.build(trained_cfg).to(dtype)
        model.init_weights()
        inputs = _inputs(size, dtype, generator, channels)
        start_error = _compare(reference, model, inputs)
        deploy = stock_model_config(Config(dict(default_scope=scope,
                                                model=dict(part=trained_cfg))))['part']
        deploy.pop('init_cfg', None)
        deployed = MODELS.build(deploy).to(dtype)
    return _squeeze_and_compare(reference, model, deployed, inputs, start_error, generator)


def check_model(build_stock: Callable[[], nn.Module], size=(64, 64),
                dtype: torch.dtype = torch.float32, seed: int = 0) -> BackboneCheck:
    """:func:`check_backbone` for any model (timm, torchvision), through
    :func:`mmorepa.unsqueeze` of a copy of the stock model.

    Args:
        build_stock (callable): Builds the stock model.
        size, dtype, seed: As :func:`check_backbone`.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    reference = _randomize(build_stock().to(dtype), generator)
    model = unsqueeze(reference)
    inputs = torch.randn(2, 3, *size, generator=generator).to(dtype)
    start_error = _compare(reference, model, inputs)
    deployed = build_stock().to(dtype)
    return _squeeze_and_compare(reference, model, deployed, inputs, start_error, generator)


def _squeeze_and_compare(reference, model, deployed, inputs, start_error, generator):
    _randomize(model, generator)
    model.eval()
    squeezed = reparameterize(model).state_dict()
    deployed.load_state_dict(squeezed, strict=True)
    return BackboneCheck(converted=_count(model, ReparamConv2d),
                         convs=_count(reference, nn.Conv2d),
                         start_error=start_error,
                         squeeze_error=_compare(model, deployed, inputs))
