"""What a config says about its model: how to build it and what it deploys as."""
import copy
import inspect
from typing import Optional

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from ..backbones import ReparamBackbone, build_orepa_backbone
from ..layers import builds_reparam_layers
from .errors import ReparamError

DEFAULT_SCOPE = 'mmpretrain'


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` with the registry of the config's default scope, as
    mmengine's Runner builds it (a top-level ``data_preprocessor``, e.g.
    mmpretrain's with ``num_classes`` for Mixup / CutMix, fills in the model's)."""
    model = copy.deepcopy(cfg.model)
    if isinstance(cfg.get('data_preprocessor'), dict):
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return MODELS.build(model)


def backbone_class(cfg: Config) -> type:
    """The class (or builder function) ``cfg.model.backbone`` builds.

    Raises:
        ReparamError: The model has no backbone, or its type is unknown.
    """
    backbone = cfg.model.get('backbone')
    if backbone is None:
        raise ReparamError('cfg.model has no backbone')
    found = _registered(cfg, backbone.get('type'))
    if found is None:
        raise ReparamError(f'cfg.model.backbone.type {backbone.get("type")!r} is not registered')
    return found


def _registered(cfg: Config, kind):
    """What the type ``kind`` names in the registry of the config's scope (the
    one ``MODELS.build`` switches to); a class or function is itself."""
    if not isinstance(kind, str):
        return kind
    with MODELS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        return registry.get(kind)


def reparam_conv_cfg(cfg: Config) -> Optional[dict]:
    """The backbone's ``conv_cfg`` when it builds re-param layers, else None."""
    conv_cfg = cfg.model.backbone.get('conv_cfg')
    if isinstance(conv_cfg, dict) and builds_reparam_layers(_registered(cfg, conv_cfg.get('type'))):
        return conv_cfg
    return None


def is_reparam_config(cfg: Config) -> bool:
    """Whether the config's backbone trains with re-param layers: a re-param
    backbone, the ``OREPABackbone`` wrapper, or a re-param ``conv_cfg``."""
    kind = backbone_class(cfg)
    return (kind is build_orepa_backbone or reparam_conv_cfg(cfg) is not None
            or (inspect.isclass(kind) and issubclass(kind, ReparamBackbone)))


def weights_only_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose model takes its weights from a checkpoint only
    (no backbone ``init_cfg`` / ``pretrained`` to download or load)."""
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.pop('init_cfg', None)
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    return cfg


def stock_backbone_config(cfg: Config) -> dict:
    """The config of the stock backbone that ``cfg``'s backbone squeezes to.

    - A re-param backbone says which (``ReparamBackbone.stock_config``):
      ``OREPAResNet`` becomes the scope's ``ResNet`` (``ResNeXt`` when
      grouped), ``OREPARepVGG`` becomes ``RepVGG(deploy=True)``.
    - ``OREPABackbone`` becomes the backbone it wraps.
    - A re-param ``conv_cfg`` becomes the conv the layers convolve like: its
      ``stock_conv_cfg``, or ``None`` (``nn.Conv2d``). Set explicitly, not
      dropped: the deploy network is the one that was trained, even where
      the backbone's default conv pads otherwise.

    Raises:
        ReparamError: The backbone trains no re-param layers, or its stock
            counterpart cannot take one of its arguments.
    """
    kind = backbone_class(cfg)
    backbone = copy.deepcopy(dict(cfg.model.backbone))
    if kind is build_orepa_backbone:
        return dict(backbone['backbone'])  # an init_cfg beside it is dropped on deploy
    conv_cfg = reparam_conv_cfg(cfg)
    if conv_cfg is not None:
        backbone['conv_cfg'] = conv_cfg.get('stock_conv_cfg')
        return backbone
    if not (inspect.isclass(kind) and issubclass(kind, ReparamBackbone)):
        raise ReparamError(f'cfg.model.backbone ({getattr(kind, "__name__", kind)}) trains no '
                           're-param layers (a re-param backbone, OREPABackbone or a re-param '
                           'conv_cfg): nothing to deploy')
    try:
        return kind.stock_config(backbone, cfg.get('default_scope', DEFAULT_SCOPE))
    except ValueError as error:
        raise ReparamError(str(error)) from error


def deploy_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose backbone is the stock one the trained backbone
    squeezes to (:func:`stock_backbone_config`).

    The backbone's ``init_cfg`` is dropped (the weights come from the deploy
    checkpoint), and so are mmorepa's import and hooks: the deploy model
    needs no plugin.

    Args:
        cfg (Config): A training config with ``model.backbone``.

    Raises:
        ReparamError: The backbone trains no re-param layers, or its stock
            counterpart cannot take one of its arguments.
    """
    stock = stock_backbone_config(cfg)
    stock.pop('init_cfg', None)
    cfg = weights_only_config(cfg)
    cfg.model.backbone = stock
    cfg.pop('custom_imports', None)
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook.get('type') != 'DeployCheckpointHook']
    return cfg
