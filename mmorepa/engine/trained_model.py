"""Building a model from its config and loading a checkpoint of either form into it."""
from dataclasses import dataclass

from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from torch import nn

from ..layers import Squeezable
from ..utils import name_list
from .checkpoint_io import read_checkpoint
from .configs import build_model, deploy_config, is_reparam_config, weights_only_config
from .errors import ReparamError

TRAIN_FORM = 'train form'
SQUEEZED = 'squeezed'


@dataclass
class TrainedModel:
    """A model and the checkpoint loaded into it.

    Args:
        model (nn.Module): In eval mode, SyncBN replaced by BN.
        form (str): ``'train form'`` (the re-param model of the training
            config) or ``'squeezed'`` (the stock model).
        cfg (Config): The config the model was built from.
        checkpoint (dict): The whole checkpoint (``meta`` and so on).
    """
    model: nn.Module
    form: str
    cfg: Config
    checkpoint: dict


def build_stock_model(cfg: Config) -> nn.Module:
    """Build the model of a config that trains no re-param layers (a deploy
    config), SyncBN replaced by BN.

    Raises:
        ReparamError: The model holds re-param modules all the same: a module
            that builds them without a config node saying so (its
            ``conv_cfg``, a wrapper), which an export would leave out. They
            are named.
    """
    model = revert_sync_batchnorm(build_model(cfg))
    left = [name or '<model>' for name, module in model.named_modules()
            if isinstance(module, Squeezable)]
    if left:
        raise ReparamError(
            f'the model of a config without re-param nodes builds {len(left)} re-param '
            f'module(s): {name_list(left)}; no config node says so (a conv_cfg, OREPABackbone, '
            f'OREPAModule), so no deploy config can replace them: put OREPA in through one')
    return model


def load_trained_model(cfg: Config, checkpoint: str) -> TrainedModel:
    """Load ``checkpoint`` into the model of ``cfg``, whichever form it holds.

    A training config takes a train-form checkpoint (its own re-param
    model) or a squeezed one (the stock model of :func:`deploy_config`);
    a deploy config takes a squeezed one. Loading is strict.

    Args:
        cfg (Config): A training or deploy config.
        checkpoint (str): Path of the checkpoint (read weights-only).

    Raises:
        ReparamError: The checkpoint is unreadable or fits no form; the keys
            it lacks and has in excess (for the config's own model) are named.
            Or the squeezed form still holds re-param modules
            (:func:`build_stock_model`).
    """
    loaded = read_checkpoint(checkpoint)
    state_dict = loaded.get('state_dict', loaded)
    state_dict = {(k[len('module.'):] if k.startswith('module.') else k): v
                  for k, v in state_dict.items()}
    cfg = weights_only_config(cfg)
    candidates = [(TRAIN_FORM if is_reparam_config(cfg) else SQUEEZED, cfg)]
    if candidates[0][0] == TRAIN_FORM:
        candidates.append((SQUEEZED, deploy_config(cfg)))
    first_keys = None
    for form, form_cfg in candidates:
        model = (build_stock_model(form_cfg) if form == SQUEEZED else
                 revert_sync_batchnorm(build_model(form_cfg)))
        keys = set(model.state_dict())
        first_keys = keys if first_keys is None else first_keys
        if keys == set(state_dict):
            try:
                model.load_state_dict(state_dict, strict=True)
            except RuntimeError as error:
                raise ReparamError(f'{checkpoint} has the keys of the {form} of this config but '
                                   f'not its shapes (another architecture?): '
                                   f'{" ".join(str(error).split())}') from error
            return TrainedModel(model.eval(), form, form_cfg, loaded)
    missing, unexpected = first_keys - set(state_dict), set(state_dict) - first_keys
    raise ReparamError(
        f'{checkpoint} fits neither the train form nor the squeezed form of the config '
        f'(another architecture?): {len(missing)} missing key(s): {name_list(missing)}; '
        f'{len(unexpected)} unexpected key(s): {name_list(unexpected)}')
