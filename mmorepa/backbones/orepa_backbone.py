"""``type='OREPABackbone'``: OREPA inside any registered backbone, from its config."""
import copy
from typing import Optional, Sequence, Union

from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import MODELS
from torch import nn

from ..layers import CONV_KINDS, int8_training, unsqueeze


def _is_pretrained(init_cfg: dict) -> bool:
    return init_cfg['type'] == 'Pretrained' or init_cfg['type'] is PretrainedInit


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
    model through ``TIMMBackbone``) or whose convs are built otherwise. The
    backbone of ``backbone`` is built and initialized by its own ``init_cfg``
    (all but ``Pretrained``), then :func:`mmorepa.unsqueeze` replaces its convs by
    OREPA layers equal to them. The result is that backbone's own class, so
    every method and argument (``frozen_stages``, ``out_indices``, ...) works
    and its state-dict keys are the stock ones around the layers. A
    ``Pretrained`` ``init_cfg`` is kept for the Runner's ``init_weights``:
    each layer then solves itself from the stock checkpoint's conv, so the
    model starts as exactly the stock network; ``load_from`` a stock
    checkpoint does the same. The deploy config is ``backbone`` itself
    (docs/backbones.md).

    Args:
        backbone (dict): Config of any registered backbone.
        reparam (str): The re-param layer (see :func:`mmorepa.unsqueeze`).
            Default: ``'orepa'``.
        convs (Sequence[str]): Kinds of conv to convert. Default: all.
        exclude (Sequence[str]): Regular expressions over module names (inside
            the backbone) of convs to leave plain.
        init_cfg (dict | list, optional): Replaces the inner backbone's
            ``init_cfg`` (so ``model.backbone.init_cfg`` overrides work as for
            any backbone). Default: None (keep the inner one).
        quantize_kernels (bool | str): Train every layer on the INT8 grid of
            the conv it deploys as, norm folded in: ``True`` (or ``'full'``),
            ``'reduced'`` (docs/int8.md). Default: False.
        **layer_cfg: Arguments of the conv type (``branches``, ``scaling``, ...).
    """
    if not isinstance(backbone, dict) or 'type' not in backbone:
        raise TypeError(f'backbone must be a config dict with a type, got {backbone!r}')
    backbone = copy.deepcopy(backbone)
    if init_cfg is not None:
        backbone['init_cfg'] = init_cfg
    model = MODELS.build(backbone)
    configs = getattr(model, 'init_cfg', None)
    configs = [] if configs is None else configs if isinstance(configs, list) else [configs]
    pretrained = [cfg for cfg in configs if _is_pretrained(cfg)]
    if isinstance(model, BaseModule):
        # The stock start of every conv, which the OREPA layers then equal;
        # the checkpoint is loaded later, by the Runner, into the layers.
        model.init_cfg = [cfg for cfg in configs if not _is_pretrained(cfg)] or None
        model.init_weights()
        model.init_cfg = pretrained or None
        if pretrained:
            model._is_init = False
    model = unsqueeze(model, reparam, inplace=True, convs=convs, exclude=exclude, **layer_cfg)
    if quantize_kernels:
        int8_training.quantize_kernels(model,
                                       int8_training.weight_range_setting(quantize_kernels))
    return model
