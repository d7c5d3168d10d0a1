"""``type='OREPABackbone'`` and ``type='OREPAModule'``: OREPA inside any
registered module (backbone, neck, head), from its config."""
import copy
from typing import Optional, Sequence, Union

from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import MODELS
from torch import nn

from ..layers import CONV_KINDS, int8_training, unsqueeze

#: The argument of ``OREPAModule`` that holds the re-param arguments; every
#: other argument belongs to the wrapped module.
OREPA_ARGUMENTS = 'orepa'
#: The argument of ``OREPAModule`` naming the wrapped module's type.
MODULE_TYPE = 'module_type'


def is_pretrained_init(init_cfg) -> bool:
    """Whether an ``init_cfg`` entry loads a checkpoint (``type='Pretrained'``,
    by name or class)."""
    return isinstance(init_cfg, dict) and (init_cfg.get('type') == 'Pretrained'
                                           or init_cfg.get('type') is PretrainedInit)


def build_unsqueezed(module: dict,
                     reparam: str = 'orepa',
                     convs: Sequence[str] = CONV_KINDS,
                     exclude: Sequence[str] = (),
                     quantize_kernels=False,
                     **layer_cfg) -> nn.Module:
    """Build the registered module ``module`` and train its convs as re-param layers.

    The module is built and initialized by its own ``init_cfg`` (all but
    ``Pretrained``), then :func:`mmorepa.unsqueeze` replaces its convs by
    layers equal to them. The result is the module's own class, so every
    method and argument works and its state-dict keys are the stock ones
    around the layers. A ``Pretrained`` ``init_cfg`` is kept for the Runner's
    ``init_weights``: each layer then solves itself from the stock
    checkpoint's conv, so the model starts as exactly the stock network;
    ``load_from`` a stock checkpoint does the same.

    Args:
        module (dict): Config of any registered module.
        reparam (str): The re-param layer (see :func:`mmorepa.unsqueeze`).
            Default: ``'orepa'``.
        convs (Sequence[str]): Kinds of conv to convert. Default: all.
        exclude (Sequence[str]): Regular expressions over module names (inside
            the module) of convs to leave plain.
        quantize_kernels (bool | str): Train every layer on the INT8 grid of
            the conv it deploys as, norm folded in: ``True`` (or ``'full'``),
            ``'reduced'`` (docs/int8.md). Default: False.
        **layer_cfg: Arguments of the conv type (``branches``, ``scaling``, ...).
    """
    if not isinstance(module, dict) or 'type' not in module:
        raise TypeError(f'the wrapped module must be a config dict with a type, got {module!r}')
    model = MODELS.build(module)
    configs = getattr(model, 'init_cfg', None)
    configs = [] if configs is None else configs if isinstance(configs, list) else [configs]
    pretrained = [cfg for cfg in configs if is_pretrained_init(cfg)]
    if isinstance(model, BaseModule):
        # The stock start of every conv, which the OREPA layers then equal;
        # the checkpoint is loaded later, by the Runner, into the layers.
        model.init_cfg = [cfg for cfg in configs if not is_pretrained_init(cfg)] or None
        model.init_weights()
        model.init_cfg = pretrained or None
        if pretrained:
            model._is_init = False
    model = unsqueeze(model, reparam, inplace=True, convs=convs, exclude=exclude, **layer_cfg)
    if quantize_kernels:
        int8_training.quantize_kernels(model,
                                       int8_training.weight_range_setting(quantize_kernels))
    return model


@MODELS.register_module('OREPABackbone')
def build_orepa_backbone(backbone: dict,
                         reparam: str = 'orepa',
                         convs: Sequence[str] = CONV_KINDS,
                         exclude: Sequence[str] = (),
                         init_cfg: Optional[Union[dict, list]] = None,
                         quantize_kernels=False,
                         **layer_cfg) -> nn.Module:
    """Build a stock backbone and train its convs as OREPA layers.

    For backbones without a ``conv_cfg`` (mmpretrain's ``ConvNeXt``, a timm
    model through ``TIMMBackbone``) or whose convs are built otherwise; see
    :func:`build_unsqueezed`. The deploy config is ``backbone`` itself
    (docs/backbones.md).

    Args:
        backbone (dict): Config of any registered backbone.
        init_cfg (dict | list, optional): Replaces the inner backbone's
            ``init_cfg`` (so ``model.backbone.init_cfg`` overrides work as for
            any backbone). Default: None (keep the inner one).
        reparam, convs, exclude, quantize_kernels, **layer_cfg: See
            :func:`build_unsqueezed`.
    """
    if not isinstance(backbone, dict) or 'type' not in backbone:
        raise TypeError(f'backbone must be a config dict with a type, got {backbone!r}')
    backbone = copy.deepcopy(backbone)
    if init_cfg is not None:
        backbone['init_cfg'] = init_cfg
    return build_unsqueezed(backbone, reparam, convs, exclude, quantize_kernels, **layer_cfg)


@MODELS.register_module('OREPAModule')
def build_orepa_module(module_type: Union[str, type],
                       orepa: Optional[dict] = None,
                       **module_args) -> nn.Module:
    """Any registered module (a neck, a head, a backbone) with OREPA layers:
    the config of the module with its ``type`` moved to ``module_type``.

    The other arguments stay where a base config put them, so a child config
    wraps an inherited head in one line, and a detector's ``train_cfg`` /
    ``test_cfg`` reach the head as before::

        model = dict(decode_head=dict(type='OREPAModule',
                                      module_type='DepthwiseSeparableASPPHead'))

    Convs the module builds as plain ``nn.Conv2d`` (without ``conv_cfg``) are
    converted too (:func:`build_unsqueezed`). The deploy config puts
    ``module_type`` back as ``type`` (docs/necks_heads.md).

    Args:
        module_type (str | type): The wrapped module's type.
        orepa (dict, optional): Arguments of :func:`build_unsqueezed`
            (``convs``, ``exclude``, ``branches``, ...). Default: None.
        **module_args: The wrapped module's arguments (``init_cfg`` included).
    """
    if orepa is not None and not isinstance(orepa, dict):
        raise TypeError(f'orepa must be a dict of re-param arguments, got {orepa!r}')
    return build_unsqueezed(dict(type=module_type, **module_args), **(orepa or {}))
