"""One walk that squeezes every re-parameterizable module of a model."""
import copy

import torch
from torch import nn

from ..kernels import fold_bias_into_bn_stats


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


def drop_biases_before_norms(model: nn.Module) -> nn.Module:
    """Fold the bias of every ``nn.Conv2d`` that a BatchNorm directly follows
    into that norm's running mean, and remove the bias. In place.

    A squeezed DBB has a bias; inside a ResNet its conv is followed by the
    backbone's norm, and the stock ResNet's conv has no bias. "Directly
    follows" means the next child registered in the same parent, which is how
    ResNet blocks and stems register ``convN`` / ``normN``.

    Args:
        model (nn.Module): A squeezed model.

    Returns:
        nn.Module: ``model``.
    """
    for parent in model.modules():
        children = list(parent.children())
        for conv, norm in zip(children[:-1], children[1:]):
            if (type(conv) is nn.Conv2d and conv.bias is not None
                    and isinstance(norm, nn.modules.batchnorm._BatchNorm)):
                fold_bias_into_bn_stats(conv.bias, norm)
                conv.register_parameter('bias', None)
    return model
