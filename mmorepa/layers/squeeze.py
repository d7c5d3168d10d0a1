"""One walk that squeezes every re-parameterizable module of a model."""
import copy

import torch
from torch import nn


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every module that can squeeze itself by its plain equivalent.

    A module takes part by defining ``squeeze()``, which returns the plain
    module (an ``nn.Conv2d``, or a small deploy block) that is equal to it in
    eval mode. The replacement goes into the same attribute, so state-dict keys
    become those of the plain architecture. Modules are visited top-down: a
    block that squeezes itself as a whole is not entered. Running it again
    changes nothing.

    Args:
        model (nn.Module): The trained model. BatchNorm statistics are used
            as they are (eval-mode equivalence).
        inplace (bool): Modify ``model`` itself instead of a deep copy.
            Default: False, so the trained model survives.

    Returns:
        nn.Module: The squeezed model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    if not inplace:
        model = copy.deepcopy(model)
    if hasattr(model, 'squeeze'):
        with torch.no_grad():
            return model.squeeze()
    for name, child in model.named_children():
        if hasattr(child, 'squeeze'):
            with torch.no_grad():
                setattr(model, name, child.squeeze())
        else:
            reparameterize(child, inplace=True)
    return model
