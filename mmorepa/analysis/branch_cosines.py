"""Cosine similarity between the branches of every OREPA layer (paper, Fig. 7).

A branch's *contribution* is its kernel with its scale applied,
``scale_b[o] * K_b[o]`` (the raw kernel under ``scaling=None``): the term it
adds to the layer's squeezed kernel. Two contributions are compared as flat
vectors (all output channels, input channels and positions), in float64.
A contribution that is exactly zero (the prior branch at its published
0.0 start) has no direction: its cosines are NaN.
"""
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..layers import BranchSum

# (branch names, n x n cosine matrix) of one layer.
LayerSimilarity = Tuple[Tuple[str, ...], Tensor]


@torch.no_grad()
def branch_contributions(branch_sum: BranchSum) -> 'OrderedDict[str, Tensor]':
    """Each branch's scaled kernel, in the layer's branch order, as float64.

    Args:
        branch_sum (BranchSum): The branches of one layer
            (``OREPAConv2d.branches``, a generator of ``OREPALargeConv2d``,
            ``OREPA1x1Conv2d.branches``).

    Returns:
        OrderedDict[str, Tensor]: Branch name -> ``scale_b[o] * K_b[o]``.
    """
    if not isinstance(branch_sum, BranchSum):
        raise TypeError(f'branch_sum must be a BranchSum, got {type(branch_sum).__name__}')
    contributions = OrderedDict()
    for index, (name, branch) in enumerate(branch_sum.items()):
        scale = None if branch_sum.scales is None else branch_sum.scales[index]
        contributions[name] = branch.kernel(scale).double()
    return contributions


def cosine_matrix(kernels: Sequence[Tensor]) -> Tensor:
    """``C[i, j] = <K_i, K_j> / (|K_i| |K_j|)`` over flattened kernels, float64.

    Rows and columns of an all-zero kernel are NaN (no direction to compare).

    Args:
        kernels (Sequence[Tensor]): Kernels of one shape.

    Returns:
        Tensor: ``(n, n)`` float64.
    """
    if len(kernels) == 0:
        raise ValueError('kernels must hold at least one kernel, got none')
    shapes = {tuple(kernel.shape) for kernel in kernels}
    if len(shapes) != 1:
        raise ValueError(f'kernels must all have one shape, got {sorted(shapes)}')
    flat = torch.stack([kernel.detach().double().flatten() for kernel in kernels])
    norms = torch.linalg.vector_norm(flat, dim=1)
    # A zero norm gives 0/0 = NaN, which is what we want there.
    unit = flat / norms[:, None]
    return unit @ unit.T


def layer_name(module_name: str) -> str:
    """A layer's short name: no ``backbone.`` prefix, no ``.branches`` suffix.

    Args:
        module_name (str): A name from ``model.named_modules()``.

    Returns:
        str: The short name.
    """
    name = module_name[len('backbone.'):] if module_name.startswith('backbone.') else module_name
    return name[:-len('.branches')] if name.endswith('.branches') else name


def layer_contributions(model: nn.Module) -> 'OrderedDict[str, OrderedDict]':
    """:func:`branch_contributions` of every :class:`BranchSum` of ``model``, by
    layer name.

    Args:
        model (nn.Module): A model with OREPA layers.

    Returns:
        OrderedDict[str, OrderedDict]: Layer name -> branch name -> contribution.

    Raises:
        ValueError: The model has no OREPA layer (a squeezed or plain model).
    """
    layers = OrderedDict((layer_name(name), branch_contributions(module))
                         for name, module in model.named_modules()
                         if isinstance(module, BranchSum))
    if not layers:
        raise ValueError(f'{type(model).__name__} has no OREPA layer (no BranchSum): a '
                         'squeezed or plain model has no branches to compare')
    return layers


def model_similarities(model: nn.Module) -> 'OrderedDict[str, LayerSimilarity]':
    """Branch cosines of every :class:`BranchSum` of ``model``, by layer name.

    Args:
        model (nn.Module): A model with OREPA layers.

    Returns:
        OrderedDict[str, tuple]: Layer name -> ``(branch names, cosine matrix)``.

    Raises:
        ValueError: The model has no OREPA layer (a squeezed or plain model).
    """
    return OrderedDict((name, (tuple(contributions), cosine_matrix(list(contributions.values()))))
                       for name, contributions in layer_contributions(model).items())


def moved_similarities(model: nn.Module,
                       start: Dict[str, Dict[str, Tensor]]) -> 'OrderedDict[str, LayerSimilarity]':
    """Cosines between the branches' *changes* since ``start``: the directions
    training moved each branch's contribution in (sec. 3.4's question, whether
    the branches are optimized differently), by layer name.

    Args:
        model (nn.Module): The model now.
        start (dict): :func:`layer_contributions` of the same model earlier.

    Returns:
        OrderedDict[str, tuple]: Layer name -> ``(branch names, cosine matrix
        of the changes)``.
    """
    moved = OrderedDict()
    for name, contributions in layer_contributions(model).items():
        changes = [kernel - start[name][branch].double()
                   for branch, kernel in contributions.items()]
        moved[name] = (tuple(contributions), cosine_matrix(changes))
    return moved


def mean_over_layers(layers: Dict[str, LayerSimilarity]) -> Dict[Tuple[str, ...], dict]:
    """The mean cosine matrix of the layers that have the same branches.

    A NaN entry of one layer (a zero contribution) is left out of that entry's
    mean; the entry is NaN only when it is NaN in every layer.

    Args:
        layers (dict): Layer name -> ``(branch names, cosine matrix)``.

    Returns:
        dict: branch names -> ``dict(cosine=Tensor, layers=int)``.
    """
    groups: Dict[Tuple[str, ...], List[Tensor]] = OrderedDict()
    for branches, matrix in layers.values():
        groups.setdefault(branches, []).append(matrix)
    return OrderedDict((branches, dict(cosine=torch.stack(matrices).nanmean(0),
                                       layers=len(matrices)))
                       for branches, matrices in groups.items())


def mean_off_diagonal_abs(matrix: Tensor) -> float:
    """Mean of ``|C[i, j]|`` over ``i != j`` (NaN entries left out): one number
    for how alike a layer's branches are (0: orthogonal, 1: parallel).

    Args:
        matrix (Tensor): An ``(n, n)`` cosine matrix.

    Returns:
        float: The mean; NaN for one branch.
    """
    size = matrix.shape[0]
    off_diagonal = matrix[~torch.eye(size, dtype=torch.bool)].abs()
    return float(off_diagonal.nanmean()) if size > 1 else float('nan')
