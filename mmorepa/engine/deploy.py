"""Exporting a trained re-param checkpoint as the stock model it squeezes to.

One path for :class:`DeployCheckpointHook` and every tool: the checkpoint on
disk is loaded into a model built from the config (EMA weights, when
``EMAHook`` wrote them), squeezed as a whole (backbone, neck, heads), written
with the stock keys beside a deploy config, and verified by loading the
written file into the stock model.
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from mmengine.config import Config
from torch import nn

from ..layers import int8_weight_grid, reparameterize
from ..utils import name_list
from .checkpoint_io import atomic_output, read_checkpoint, save_atomic
from .configs import deploy_config
from .errors import ReparamError
from .trained_model import SQUEEZED, TrainedModel, build_stock_model, load_trained_model

# Names of what an export writes: beside the checkpoint, and in a config folder.
DEPLOY_SUFFIX = '_deploy.pth'
DEPLOY_CONFIG_NAME = 'deploy_config.py'
#: Where a deploy checkpoint's ``meta['mmorepa']`` keeps the INT8 grid of a run
#: trained on it (:func:`mmorepa.layers.int8_weight_grid`).
INT8_GRID_KEY = 'int8_weight_grid'


def squeezed_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """State dict of the squeezed copy of ``model`` (the model is not changed)."""
    was_training = model.training
    squeezed = reparameterize(model.eval())
    model.train(was_training)
    return {k: v.detach().cpu() for k, v in squeezed.state_dict().items()}


def relative_difference(reference: Any, actual: Any) -> float:
    """``max |actual - reference| / max |reference|`` over (nested) tensor outputs.

    The one measure every verification here reports.
    """
    def flat(outputs):
        if isinstance(outputs, torch.Tensor):
            return [outputs.detach().double()]
        if isinstance(outputs, dict):
            outputs = list(outputs.values())
        if isinstance(outputs, (list, tuple)):
            return [tensor for item in outputs for tensor in flat(item)]
        raise TypeError(f'cannot compare outputs of type {type(outputs).__name__}')

    reference, actual = flat(reference), flat(actual)
    if [r.shape for r in reference] != [a.shape for a in actual]:
        raise ValueError('the outputs differ in number or shape')
    error = max(((r - a).abs().max().item() for r, a in zip(reference, actual)), default=0.0)
    scale = max((r.abs().max().item() for r in reference), default=0.0)
    return error / max(scale, 1e-12)


@dataclass
class DeployExport:
    """What :func:`export_deploy` wrote, and the two models to compare.

    Args:
        checkpoint (str): The deploy checkpoint.
        config (str): The deploy config.
        trained (TrainedModel): The model built from the training checkpoint.
        deployed (TrainedModel): The stock model loaded from ``checkpoint``.
    """
    checkpoint: str
    config: str
    trained: TrainedModel
    deployed: TrainedModel

    @torch.no_grad()
    def difference(self, inputs: torch.Tensor, data_samples: Optional[list] = None) -> float:
        """Relative difference of the two models' tensor outputs on ``inputs``
        (:func:`tensor_outputs`): every re-param part, backbone, neck and
        heads, is compared."""
        return relative_difference(tensor_outputs(self.trained.model, inputs, data_samples),
                                   tensor_outputs(self.deployed.model, inputs, data_samples))


def needs_image_metadata(model: nn.Module) -> bool:
    """Whether the model's tensor forward needs image metadata besides the
    images: a two-stage detector's second stage (its proposals)."""
    return getattr(model, 'with_rpn', False) or hasattr(model, 'roi_head')


def tensor_outputs(model: nn.Module, inputs: torch.Tensor, data_samples: Optional[list] = None):
    """What an OpenMMLab model computes from ``inputs`` before its
    post-processing: the forward with ``mode='tensor'`` (a classifier's
    scores, a segmentor's logits, a detector's head outputs).

    A two-stage detector's second stage needs image metadata: without
    ``data_samples`` its features (backbone and neck) stand for it.
    """
    if data_samples is None and needs_image_metadata(model):
        return model.extract_feat(inputs)
    return model(inputs, data_samples, mode='tensor')


def export_deploy(cfg: Config, checkpoint: str, checkpoint_dir: str,
                  config_dir: Optional[str] = None) -> Optional[DeployExport]:
    """Squeeze a train-form checkpoint into a stock-model one.

    Writes ``<checkpoint_dir>/<checkpoint name>_deploy.pth`` (squeezed weights
    under the stock keys, the checkpoint's ``meta``, no optimizer state;
    atomically, never over ``checkpoint``) and ``<config_dir>/deploy_config.py``
    (every re-param part of the model replaced by its stock part,
    :func:`~mmorepa.engine.configs.stock_model_config`; ``load_from`` pointing
    at the checkpoint). Nothing is written unless the squeezed state dict has
    exactly the keys of the deploy config's model. Then loads the written
    checkpoint strictly into the stock model. A run that trained on its INT8
    grid (``quantize_kernels``) writes the deployed kernels on that grid and
    the grid under ``meta['mmorepa']['int8_weight_grid']``, which
    ``tools/quantize.py`` uses instead of calibrating the weights.

    Args:
        cfg (Config): The training config.
        checkpoint (str): The training checkpoint.
        checkpoint_dir (str): Folder of the deploy checkpoint.
        config_dir (str, optional): Folder of the deploy config. Default:
            ``checkpoint_dir``.

    Returns:
        DeployExport | None: ``None`` when the checkpoint is already squeezed
        (it loads into the deploy config's model).

    Raises:
        ReparamError: The config trains no re-param layers; the checkpoint
            cannot be read or fits no form; the deploy model would not take
            the squeezed weights (re-param modules left in it, or keys that
            differ: both are named); or the output would overwrite the
            checkpoint.
    """
    trained = load_trained_model(cfg, checkpoint)  # names re-param modules no node builds
    stock_cfg = deploy_config(cfg)
    if trained.form == SQUEEZED:
        return None
    state_dict = squeezed_state_dict(trained.model)
    stock_model = build_stock_model(stock_cfg)
    expected = set(stock_model.state_dict())
    if expected != set(state_dict):
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        raise ReparamError(
            f'the squeezed model of {checkpoint} does not fit the deploy config\'s model: '
            f'{len(missing)} key(s) it lacks: {name_list(missing)}; {len(unexpected)} it has '
            f'in excess: {name_list(unexpected)}; nothing was written')
    name = os.path.splitext(os.path.basename(checkpoint))[0]
    target = os.path.join(checkpoint_dir, name + DEPLOY_SUFFIX)
    ours = dict(squeezed=True)
    grid = int8_weight_grid(trained.model)
    if grid:  # a run trained on its INT8 grid: the grid travels with the weights
        ours[INT8_GRID_KEY] = grid
    meta = dict(trained.checkpoint.get('meta') or {},
                source_checkpoint=os.path.abspath(checkpoint), mmorepa=ours)
    save_atomic(dict(meta=meta, state_dict=state_dict), target, source=checkpoint)
    stock_cfg.load_from = target
    config_path = os.path.join(config_dir or checkpoint_dir, DEPLOY_CONFIG_NAME)
    with atomic_output(config_path) as temporary:
        stock_cfg.dump(temporary)
    # The written file, read back, into the stock model built above.
    written = read_checkpoint(target)
    try:
        stock_model.load_state_dict(written['state_dict'], strict=True)
    except RuntimeError as error:
        raise ReparamError(f'{target} did not load into the stock model: '
                           f'{" ".join(str(error).split())}') from error
    deployed = TrainedModel(stock_model.eval(), SQUEEZED, stock_cfg, written)
    return DeployExport(target, config_path, trained, deployed)
