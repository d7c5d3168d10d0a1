"""Turning a trained re-param model into the stock model it squeezes to.

Shared by :class:`DeployCheckpointHook` and ``tools/reparameterize.py``: the
deploy config (the stock backbone in place of the re-param one), the deploy
checkpoint (squeezed weights under the stock keys), and the check that the
stock model reproduces the trained one.
"""
import copy
import os
from typing import Any, Dict, Optional, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from torch import nn

from ..layers import reparameterize
from .checkpoint_io import save_atomic

# Names of what an export writes: beside the checkpoint, and in a config folder.
DEPLOY_SUFFIX = '_deploy.pth'
DEPLOY_CONFIG_NAME = 'deploy_config.py'

# Arguments that only the re-param backbones take.
REPARAM_ONLY_ARGS = ('reparam', 'branches', 'scaling', 'rep_1x1', 'linear_stem', 'deploy',
                     'groups', 'width_per_group', 'base_width')
# Defaults of OREPAResNet (mmseg's ResNet) that the stock ResNet of another
# library has different defaults for: written out so the meaning is kept.
RESNET_DEFAULTS = dict(out_indices=(0, 1, 2, 3), norm_eval=False, zero_init_residual=True,
                       stem_channels=64)


def _stock_resnet(backbone: ConfigDict, scope: str) -> ConfigDict:
    stock = {k: v for k, v in backbone.items() if k not in REPARAM_ONLY_ARGS}
    for key, value in RESNET_DEFAULTS.items():
        stock.setdefault(key, value)
    groups = backbone.get('groups', 1)
    width = backbone.get('base_width', backbone.get('width_per_group', 4))
    if groups != 1:
        stock['type'] = 'ResNeXt'
        stock['groups'] = groups
        stock['width_per_group' if scope == 'mmpretrain' else 'base_width'] = width
    else:
        stock['type'] = 'ResNet'
    if scope == 'mmpretrain':
        if stock.get('deep_stem'):
            raise ValueError("mmpretrain's stock ResNet names its deep stem differently; "
                             'deep_stem=True deploys under mmdet or mmseg only')
        for key in ('pretrained', 'dcn', 'stage_with_dcn', 'plugins', 'multi_grid',
                    'contract_dilation'):
            if stock.pop(key, None) not in (None, False, (False, ) * 4):
                raise ValueError(f"mmpretrain's stock ResNet has no {key!r}")
    return ConfigDict(stock)


def deploy_config(cfg: Config) -> Config:
    """A copy of ``cfg`` whose backbone is the stock one the trained backbone squeezes to.

    ``OREPAResNet`` becomes the scope's ``ResNet`` (``ResNeXt`` when grouped),
    ``OREPARepVGG`` becomes ``RepVGG(deploy=True)``; the backbone's
    ``init_cfg`` is dropped (the weights come from the deploy checkpoint), and
    so are mmorepa's import and hooks: the deploy model needs no plugin.

    Args:
        cfg (Config): A training config with ``model.backbone``.

    Returns:
        Config: The deploy config.
    """
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.get('backbone')
    if backbone is None:
        raise ValueError('cfg.model has no backbone to deploy')
    kind = backbone.get('type')
    if kind == 'OREPAResNet':
        stock = _stock_resnet(backbone, cfg.get('default_scope', 'mmpretrain'))
    elif kind == 'OREPARepVGG':
        stock = ConfigDict({k: v for k, v in backbone.items() if k not in REPARAM_ONLY_ARGS})
        stock.update(type='RepVGG', deploy=True)
    else:
        raise ValueError(f"cfg.model.backbone.type must be 'OREPAResNet' or 'OREPARepVGG', "
                         f'got {kind!r}')
    stock.pop('init_cfg', None)
    cfg.model.backbone = stock
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None
    cfg.pop('custom_imports', None)
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'DeployCheckpointHook']
    cfg.custom_hooks = hooks
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` with the registry of the config's default scope."""
    from mmengine.registry import MODELS
    scope = cfg.get('default_scope')
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)


def squeezed_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """State dict of the squeezed copy of ``model`` (the model is not changed)."""
    was_training = model.training
    squeezed = reparameterize(model.eval())
    model.train(was_training)
    return {k: v.detach().cpu() for k, v in squeezed.state_dict().items()}


def deploy_checkpoint(model: nn.Module, meta: Optional[dict] = None) -> Dict[str, Any]:
    """``{'meta', 'state_dict'}`` of the squeezed model; no optimizer state."""
    meta = dict(meta or {})
    meta['mmorepa'] = dict(squeezed=True)
    return dict(meta=meta, state_dict=squeezed_state_dict(model))


def export_deploy(model: nn.Module, deploy_cfg: Config, checkpoint: str, checkpoint_dir: str,
                  config_dir: str, meta: Optional[dict] = None) -> Tuple[str, str]:
    """Write the deploy checkpoint and the deploy config of a trained model.

    ``<checkpoint_dir>/<checkpoint name>_deploy.pth`` (atomically, never over
    ``checkpoint``) and ``<config_dir>/deploy_config.py``, whose ``load_from``
    points at it. ``deploy_cfg.load_from`` is set in place.

    Args:
        model (nn.Module): The trained model (not changed).
        deploy_cfg (Config): Its deploy config (see :func:`deploy_config`).
        checkpoint (str): The training checkpoint the export comes from.
        checkpoint_dir (str): Folder of the deploy checkpoint.
        config_dir (str): Folder of the deploy config.
        meta (dict, optional): Kept in the deploy checkpoint.

    Returns:
        tuple[str, str]: Paths of the deploy checkpoint and the deploy config.
    """
    name = os.path.splitext(os.path.basename(checkpoint))[0]
    target = os.path.join(checkpoint_dir, name + DEPLOY_SUFFIX)
    save_atomic(deploy_checkpoint(model, meta), target, source=checkpoint)
    deploy_cfg.load_from = target
    config_path = os.path.join(config_dir, DEPLOY_CONFIG_NAME)
    deploy_cfg.dump(config_path)
    return target, config_path


def max_output_difference(reference: Any, actual: Any) -> float:
    """Largest absolute difference between two (nested) outputs of tensors."""
    if isinstance(reference, torch.Tensor):
        return (reference.float() - actual.float()).abs().max().item()
    if isinstance(reference, (list, tuple)):
        return max((max_output_difference(r, a) for r, a in zip(reference, actual)),
                   default=0.0)
    if isinstance(reference, dict):
        return max((max_output_difference(reference[k], actual[k]) for k in reference),
                   default=0.0)
    raise TypeError(f'cannot compare outputs of type {type(reference).__name__}')


@torch.no_grad()
def verify_deploy_model(model: nn.Module, deploy_model: nn.Module,
                        inputs: torch.Tensor) -> float:
    """Max difference of the backbone outputs of the trained and the deploy model.

    Only the backbone changes when squeezing, so equal backbone outputs mean
    equal model outputs. Both models are compared in eval mode.

    Returns:
        float: The max absolute difference, relative to the largest output.
    """
    was_training = model.training
    model.eval()
    deploy_model.eval()
    reference = model.backbone(inputs)
    difference = max_output_difference(reference, deploy_model.backbone(inputs))
    scale = max_output_difference(reference, [torch.zeros_like(r) for r in reference])
    model.train(was_training)
    return difference / max(scale, 1e-12)
