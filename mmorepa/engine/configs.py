"""What a config says about its model: how to build it and what it deploys as.

One rule, over the whole ``cfg.model`` tree (backbone, neck, heads, lists of
auxiliary heads, any nested module config): every config node whose type
trains re-param layers is replaced by the stock node it squeezes to
(:func:`stock_node`). Nothing here names a component.
"""
import copy
import inspect
from typing import Any, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from ..backbones import ReparamBackbone, build_orepa_backbone, build_orepa_module
from ..backbones.orepa_backbone import MODULE_TYPE, OREPA_ARGUMENTS, is_pretrained_init
from ..layers import builds_reparam_layers
from .errors import ReparamError

DEFAULT_SCOPE = 'mmpretrain'
#: The plugin's own import, dropped from deploy configs.
PLUGIN = 'mmorepa'


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` with the registry of the config's default scope, as
    mmengine's Runner builds it (a top-level ``data_preprocessor``, e.g.
    mmpretrain's with ``num_classes`` for Mixup / CutMix, fills in the model's)."""
    model = copy.deepcopy(cfg.model)
    if isinstance(cfg.get('data_preprocessor'), dict):
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return MODELS.build(model)


def _registered(scope: Optional[str], kind):
    """What the type ``kind`` names in the model registry of ``scope`` (the one
    ``MODELS.build`` switches to), None where it names nothing there (a type of
    another registry: an assigner, an initializer); a class or function is itself."""
    if not isinstance(kind, str):
        return kind
    with MODELS.switch_scope_and_registry(scope) as registry:
        return registry.get(kind)


def stock_node(node: dict, scope: str, path: str = 'model') -> Tuple[bool, Any]:
    """Whether one config node trains re-param layers, and the stock node it
    deploys as (the node itself where it does not):

    - a re-param backbone says which (``ReparamBackbone.stock_config``):
      ``OREPAResNet`` becomes the scope's ``ResNet`` (``ResNeXt`` when
      grouped), ``OREPARepVGG`` becomes ``RepVGG(deploy=True)``;
    - ``OREPABackbone`` becomes the backbone it wraps, ``OREPAModule`` the
      module of its ``module_type``;
    - a re-param conv type (a ``conv_cfg``: ``'OREPA'``, ``'DBB'``, a layer
      class) becomes the conv its layers convolve like: its
      ``stock_conv_cfg``, or ``None`` (``nn.Conv2d``). Set explicitly, not
      dropped: the deploy network is the one that was trained, even where
      the module's default conv pads otherwise.

    Args:
        node (dict): A config dict with a ``type``.
        scope (str): The config's default scope.
        path (str): Where the node is, for error messages.

    Raises:
        ReparamError: A re-param backbone whose stock counterpart cannot take
            one of its arguments.
    """
    kind = _registered(scope, node.get('type'))
    if kind is build_orepa_backbone:
        return True, dict(node['backbone'])  # an init_cfg beside it is dropped on deploy
    if kind is build_orepa_module:
        wrapper_keys = ('type', MODULE_TYPE, OREPA_ARGUMENTS)
        return True, dict(type=node[MODULE_TYPE],
                          **{key: item for key, item in node.items() if key not in wrapper_keys})
    if inspect.isclass(kind) and issubclass(kind, ReparamBackbone):
        try:
            return True, kind.stock_config(dict(node), scope or DEFAULT_SCOPE)
        except ValueError as error:
            raise ReparamError(f'{path}: {error}') from error
    if builds_reparam_layers(kind):
        return True, node.get('stock_conv_cfg')
    return False, node


def _rewrite(value: Any, scope: str, path: str, found: List[str]) -> Any:
    """``value`` with every re-param node below it replaced (:func:`stock_node`);
    their paths are appended to ``found``."""
    if isinstance(value, dict):
        if 'type' in value:
            is_reparam, stock = stock_node(value, scope, path)
            if is_reparam:
                found.append(path)
                # The stock node may hold more (a wrapped head with a conv_cfg).
                return _rewrite(stock, scope, path, found)
        return {key: _rewrite(item, scope, f'{path}.{key}', found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rewrite(item, scope, f'{path}[{index}]', found)
                           for index, item in enumerate(value))
    return value


def _stock_part(cfg: Config, key: Optional[str] = None) -> Tuple[Any, List[str]]:
    """``cfg.model`` (or its part ``key``) rewritten (:func:`_rewrite`), and the
    paths of the re-param nodes in it."""
    found: List[str] = []
    part, path = (cfg.model, 'model') if key is None else (cfg.model[key], f'model.{key}')
    return _rewrite(part, cfg.get('default_scope'), path, found), found


def reparam_paths(cfg: Config) -> List[str]:
    """Where ``cfg.model`` trains re-param layers: the paths of the config nodes
    the deploy rewrite replaces, e.g. ``['model.backbone', 'model.neck.conv_cfg']``."""
    return _stock_part(cfg)[1]


def is_reparam_config(cfg: Config) -> bool:
    """Whether any part of the config's model trains re-param layers (a re-param
    backbone, a wrapper, or a re-param conv type anywhere, :func:`stock_node`)."""
    return bool(reparam_paths(cfg))


def stock_model_config(cfg: Config) -> dict:
    """``cfg.model`` with every re-param node replaced by its stock node
    (:func:`stock_node`).

    Raises:
        ReparamError: The model trains no re-param layers, or a re-param
            backbone's stock counterpart cannot take one of its arguments.
    """
    model, found = _stock_part(cfg)
    if not found:
        raise ReparamError('cfg.model trains no re-param layers (a re-param backbone, '
                           'OREPABackbone, OREPAModule or a re-param conv type anywhere in it): '
                           'nothing to deploy')
    return model


def stock_backbone_config(cfg: Config) -> dict:
    """The config of the stock backbone that ``cfg``'s backbone squeezes to.

    Raises:
        ReparamError: The backbone trains no re-param layers, or its stock
            counterpart cannot take one of its arguments.
    """
    backbone, found = _stock_part(cfg, 'backbone')
    if not found:
        raise ReparamError(f'cfg.model.backbone ({cfg.model.backbone.get("type")}) trains no '
                           're-param layers (a re-param backbone, OREPABackbone or a re-param '
                           'conv_cfg)')
    return backbone


def _without_pretrained(value: Any) -> Any:
    """``value`` with every ``Pretrained`` ``init_cfg`` below it dropped."""
    if isinstance(value, dict):
        value = {key: _without_pretrained(item) for key, item in value.items()}
        init_cfg = value.get('init_cfg')
        if is_pretrained_init(init_cfg):
            value.pop('init_cfg')
        elif isinstance(init_cfg, list):
            value['init_cfg'] = [item for item in init_cfg if not is_pretrained_init(item)] or None
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_without_pretrained(item) for item in value)
    return value


def weights_only_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose model takes its weights from a checkpoint only:
    no backbone ``init_cfg``, no ``Pretrained`` initialization anywhere in the
    model, no ``pretrained`` to download or load."""
    cfg = copy.deepcopy(cfg)
    cfg.model = _without_pretrained(cfg.model)
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.pop('init_cfg', None)
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    return cfg


def deploy_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose model is the stock one the trained model squeezes
    to (:func:`stock_model_config`).

    Initialization from checkpoints is dropped (:func:`weights_only_config`;
    the weights come from the deploy checkpoint), and so are mmorepa's import
    and hooks: the deploy model needs no plugin. Other custom imports stay.

    Args:
        cfg (Config): A training config.

    Raises:
        ReparamError: The model trains no re-param layers, or a re-param
            backbone's stock counterpart cannot take one of its arguments.
    """
    cfg = copy.deepcopy(cfg)
    cfg.model = stock_model_config(cfg)
    cfg = weights_only_config(cfg)
    imports = cfg.get('custom_imports')
    if imports is not None:
        kept = [name for name in imports.get('imports', [])
                if name != PLUGIN and not name.startswith(f'{PLUGIN}.')]
        if kept:
            imports.imports = kept
        else:
            cfg.pop('custom_imports')
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook.get('type') != 'DeployCheckpointHook']
    return cfg
