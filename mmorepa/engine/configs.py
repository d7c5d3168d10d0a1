"""What a config says about its model: how to build it and what it deploys as."""
import copy

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from ..backbones import ReparamBackbone
from .errors import ReparamError

DEFAULT_SCOPE = 'mmpretrain'


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` with the registry of the config's default scope."""
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return MODELS.build(cfg.model)


def backbone_class(cfg: Config) -> type:
    """The class ``cfg.model.backbone`` builds.

    Raises:
        ReparamError: The model has no backbone, or its type is unknown.
    """
    backbone = cfg.model.get('backbone')
    if backbone is None:
        raise ReparamError('cfg.model has no backbone')
    kind = backbone.get('type')
    if not isinstance(kind, str):
        return kind
    # The scope's own registry, as MODELS.build switches to it.
    with MODELS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        found = registry.get(kind)
    if found is None:
        raise ReparamError(f'cfg.model.backbone.type {kind!r} is not registered')
    return found


def is_reparam_config(cfg: Config) -> bool:
    """Whether the config's backbone is a re-param one (trains in train form)."""
    return issubclass(backbone_class(cfg), ReparamBackbone)


def weights_only_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose model takes its weights from a checkpoint only
    (no backbone ``init_cfg`` / ``pretrained`` to download or load)."""
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.pop('init_cfg', None)
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    return cfg


def deploy_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose backbone is the stock one the trained backbone squeezes to.

    The backbone class says which (``ReparamBackbone.stock_config``):
    ``OREPAResNet`` becomes the scope's ``ResNet`` (``ResNeXt`` when
    grouped), ``OREPARepVGG`` becomes ``RepVGG(deploy=True)``. The backbone's
    ``init_cfg`` is dropped (the weights come from the deploy checkpoint), and
    so are mmorepa's import and hooks: the deploy model needs no plugin.

    Args:
        cfg (Config): A training config with ``model.backbone``.

    Raises:
        ReparamError: The backbone is not a re-param one, or its stock
            counterpart cannot take one of its arguments.
    """
    kind = backbone_class(cfg)
    if not issubclass(kind, ReparamBackbone):
        raise ReparamError(f'cfg.model.backbone ({kind.__name__}) is not a re-param backbone '
                           '(OREPAResNet, OREPARepVGG): nothing to deploy')
    cfg = weights_only_config(cfg)
    try:
        scope = cfg.get('default_scope', DEFAULT_SCOPE)
        stock = kind.stock_config(dict(cfg.model.backbone), scope)
    except ValueError as error:
        raise ReparamError(str(error)) from error
    cfg.model.backbone = stock
    cfg.pop('custom_imports', None)
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook.get('type') != 'DeployCheckpointHook']
    return cfg
