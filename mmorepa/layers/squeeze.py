"""The squeeze protocol and the one walk that applies it to a whole model."""
import abc
import copy
from typing import Iterator, Tuple

import torch
from torch import nn

from ..kernels import fold_bias_into_bn_stats
from .absent_norm import AbsentNorm


class Squeezable(abc.ABC):
    """A module equal, in eval mode, to a plainer module it can build.

    Re-param layers squeeze to an ``nn.Conv2d`` (or a small deploy block);
    re-param backbones squeeze in place to the stock architecture. A mixin for
    ``nn.Module`` subclasses: :func:`reparameterize` finds these modules by
    type, never by attribute name. timm's ``reparameterize_model`` finds the
    same method under its name ``fuse``.
    """

    @abc.abstractmethod
    def squeeze(self) -> nn.Module:
        """The plain module equal to this one in eval mode (BatchNorm statistics
        as they are). It may be ``self``, converted in place."""

    def fuse(self) -> nn.Module:
        """:meth:`squeeze` under the name timm's ``reparameterize_model`` calls."""
        return self.squeeze()


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every :class:`Squeezable` module of a model by its squeezed form.

    The replacement goes into the same attribute, so state-dict keys become
    those of the plain architecture. Modules are visited top-down: a block
    that squeezes itself as a whole is not entered. Running it again changes
    nothing.

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
    with torch.no_grad():
        if isinstance(model, Squeezable):
            return model.squeeze()
        for name, child in model.named_children():
            setattr(model, name, reparameterize(child, inplace=True))
    return model


def drop_biases_before_norms(model: nn.Module) -> nn.Module:
    """Move the bias of every ``nn.Conv2d`` that a norm directly follows into
    that norm. In place.

    A squeezed DBB has a bias; the stock ResNet's convs have none. Before a
    BatchNorm the bias goes into its running mean; before an
    :class:`AbsentNorm` (a DBB-ResNet's empty norm place) the stock norm is
    put back, carrying the bias. "Directly follows" means the next child
    registered in the same parent, which is how ResNet blocks and stems
    register ``convN`` / ``normN``.

    Args:
        model (nn.Module): A squeezed model.

    Returns:
        nn.Module: ``model``.
    """
    for (_, conv), (norm_name, norm) in list(conv_norm_pairs(model)):
        if type(conv) is not nn.Conv2d:
            continue
        if isinstance(norm, AbsentNorm):
            set_submodule(model, norm_name, norm.stock_norm(conv.bias, conv.weight))
        elif conv.bias is not None and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            fold_bias_into_bn_stats(conv.bias, norm)
        else:
            continue
        conv.register_parameter('bias', None)
    return model


def conv_norm_pairs(model: nn.Module) -> Iterator[Tuple[Tuple[str, nn.Module], ...]]:
    """Every pair of consecutive children of every module, with full names.

    ResNet blocks and stems register each conv directly before its norm, so
    these pairs are the (conv, norm) pairs, among others.

    Yields:
        tuple: ``((first_name, first), (second_name, second))``.
    """
    for parent_name, parent in model.named_modules():
        prefix = f'{parent_name}.' if parent_name else ''
        children = [(prefix + name, child) for name, child in parent.named_children()]
        yield from zip(children[:-1], children[1:])


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``name`` inside ``model``."""
    parent, _, attribute = name.rpartition('.')
    setattr(model.get_submodule(parent), attribute, module)
