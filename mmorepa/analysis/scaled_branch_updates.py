"""One SGD step of a conv's end-to-end kernel under each parametrization of
the paper's sec. 3.4 (Eqs. 6-10), in float64.

Every parametrization is a module whose ``kernel()`` is the end-to-end kernel
``W_e`` the conv uses:

- (a) one kernel with a scale, ``W_e = g * W`` (Eq. 6): a :class:`BranchSum`
  of one plain branch;
- (b) branches under one shared scale, ``W_e = g * sum_i W_i`` (Eq. 7):
  :class:`SharedScaleSum`;
- (c) a scale per branch, ``W_e = sum_i g_i * W_i`` (Eq. 9): a
  :class:`BranchSum` of plain branches, the layer OREPA trains;
- (d) branches without scales, ``W_e = sum_i W_i``: ``BranchSum(scaling=None)``.

``g`` is one value per output channel (``'vector'``) or one for the kernel
(``'scalar'``). A plain branch is mmorepa's origin branch (a full kernel).
"""
import copy
import math
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import BranchSum
from ..layers.orepa_branches import OriginBranch, scale_rows


class SharedScaleSum(nn.Module):
    """Kernel ``scale[o] * sum_b K_b[o]``: branches under one shared scale.

    Args:
        branches (dict[str, nn.Module]): Name to module whose ``kernel(None)``
            is the branch's unscaled kernel.
        scale (Tensor): ``(O,)`` (vector) or ``(1,)`` (scalar) start.
    """

    def __init__(self, branches: Dict[str, nn.Module], scale: Tensor) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.scale = nn.Parameter(scale.detach().clone())

    def kernel(self) -> Tensor:
        total = sum(branch.kernel(None) for branch in self.branches.values())
        return scale_rows(total, self.scale)


def plain_branch(weight: Tensor) -> OriginBranch:
    """A full-kernel branch holding a copy of ``weight``, float64.

    Args:
        weight (Tensor): ``(O, I, k, k)``.

    Returns:
        OriginBranch: Its ``kernel(None)`` is ``weight``.
    """
    out_channels, in_channels, size, _ = weight.shape
    branch = OriginBranch(in_channels, out_channels, size, 1, 0.0).double()
    with torch.no_grad():
        branch.weight.copy_(weight)
    return branch


def scaled_sum(weights: Sequence[Tensor], scales, scaling) -> BranchSum:
    """:class:`BranchSum` of plain branches with the given start, float64.

    Args:
        weights (Sequence[Tensor]): One ``(O, I, k, k)`` kernel per branch.
        scales (Tensor | None): ``(n, O)`` or ``(n, 1)`` scales; ``None``
            with ``scaling=None``.
        scaling (str | None): ``'vector'``, ``'scalar'`` or ``None``.

    Returns:
        BranchSum: Its ``kernel()`` is the end-to-end kernel ``W_e``.
    """
    branches = {f'branch{index}': plain_branch(weight) for index, weight in enumerate(weights)}
    total = BranchSum(branches, {name: 1.0 for name in branches}, weights[0].shape[0],
                      scaling).double()
    if scaling is not None:
        with torch.no_grad():
            total.scales.copy_(scales)
    return total


@dataclass
class LinearProblem:
    """A conv on fixed random inputs, fitted to fixed random targets: the loss
    ``0.5 * mean((conv(x, W_e) - y)^2)`` whose gradient drives every step.

    Args:
        inputs (Tensor): ``(B, I, H, W)``.
        targets (Tensor): ``(B, O, H, W)`` (``'same'`` padding).
    """
    inputs: Tensor
    targets: Tensor

    def loss(self, kernel: Tensor) -> Tensor:
        output = F.conv2d(self.inputs, kernel, padding=kernel.shape[-1] // 2)
        return 0.5 * (output - self.targets).pow(2).mean()

    def gradient(self, kernel: Tensor) -> Tensor:
        """``G = dL/dW_e`` at ``kernel``."""
        kernel = kernel.detach().clone().requires_grad_(True)
        return torch.autograd.grad(self.loss(kernel), kernel)[0]


def sgd_step(module: nn.Module, problem: LinearProblem, lr: float,
             kernel_lr_factor: float = 1.0) -> Tuple[Tensor, Tensor]:
    """One plain SGD step (no momentum, no weight decay) of ``module`` on ``problem``.

    Scales (parameters named ``scale`` / ``scales``) step with ``lr``, every
    other parameter with ``lr * kernel_lr_factor``. In place.

    Args:
        module (nn.Module): A parametrization with a ``kernel()`` method.
        problem (LinearProblem): The loss.
        lr (float): Learning rate of the scales.
        kernel_lr_factor (float): The kernels' learning rate over ``lr``.
            Defaults to 1.

    Returns:
        tuple[Tensor, Tensor]: The end-to-end kernel before and after the step.
    """
    scales = [p for name, p in module.named_parameters() if name.split('.')[-1] in
              ('scale', 'scales')]
    kernels = [p for name, p in module.named_parameters() if name.split('.')[-1] not in
               ('scale', 'scales')]
    groups = [dict(params=kernels, lr=lr * kernel_lr_factor)]
    if scales:
        groups.append(dict(params=scales, lr=lr))
    optimizer = torch.optim.SGD(groups, lr=lr)
    kernel = module.kernel()
    # A single unscaled branch's kernel is its parameter itself: keep a copy.
    before = kernel.detach().clone()
    optimizer.zero_grad()
    problem.loss(kernel).backward()
    optimizer.step()
    with torch.no_grad():
        return before, module.kernel().detach().clone()


def step_update(module: nn.Module, problem: LinearProblem, lr: float,
                kernel_lr_factor: float = 1.0) -> Tuple[Tensor, Tensor]:
    """The end-to-end kernel and its update by one SGD step of a copy of ``module``.

    Args:
        module (nn.Module): A parametrization with a ``kernel()`` method (not
            changed).
        problem (LinearProblem): The loss.
        lr (float): Learning rate of the scales.
        kernel_lr_factor (float): The kernels' learning rate over ``lr``.
            Defaults to 1.

    Returns:
        tuple[Tensor, Tensor]: ``(W_e, W_e' - W_e)``.
    """
    before, after = sgd_step(copy.deepcopy(module), problem, lr, kernel_lr_factor)
    return before, after - before


def relative_difference(update: Tensor, reference: Tensor) -> float:
    """``|update - reference| / |reference|`` (Frobenius norms).

    Args:
        update (Tensor): The compared tensor.
        reference (Tensor): The reference, of the same shape.

    Returns:
        float: The relative difference.
    """
    return float(torch.linalg.vector_norm(update - reference) /
                 torch.linalg.vector_norm(reference))


def outside_span(update: Tensor, gradient: Tensor, kernel: Tensor, per_row: bool) -> float:
    """How much of ``update`` lies outside ``span{G, W_e}``, relative to ``|update|``.

    Whatever its learning rates, one SGD step of a single kernel with a scale
    moves ``W_e`` within the span of the gradient ``G`` and ``W_e`` itself:
    per output channel for a vector scale, for the whole kernel for a scalar
    one. A larger value is a direction no such conv can take.

    Args:
        update (Tensor): ``W_e' - W_e``.
        gradient (Tensor): ``dL/dW_e`` at ``W_e``.
        kernel (Tensor): ``W_e``.
        per_row (bool): One span per output channel (vector scales).

    Returns:
        float: ``|update - projection onto the span| / |update|``.
    """
    rows = update.shape[0] if per_row else 1
    residual = 0.0
    for target, g, w in zip(update.reshape(rows, -1), gradient.reshape(rows, -1),
                            kernel.reshape(rows, -1)):
        basis = torch.stack([g, w], dim=1)
        solution = torch.linalg.lstsq(basis, target[:, None], driver='gelsd').solution
        residual += float((basis @ solution - target[:, None]).pow(2).sum())
    return math.sqrt(residual) / float(torch.linalg.vector_norm(update))


def branch_spread(module: BranchSum, with_scales: bool = True) -> float:
    """Largest difference between two branches' parameters of a :class:`BranchSum`
    of plain branches: 0 when the branches are copies.

    Args:
        module (BranchSum): Plain branches (:func:`scaled_sum`).
        with_scales (bool): Compare the scales too, not only the kernels.

    Returns:
        float: The largest absolute difference.
    """
    with torch.no_grad():
        weights = torch.stack([branch.weight for branch in module.values()])
        spread = (weights - weights[:1]).abs().max()
        if with_scales and module.scales is not None:
            spread = torch.maximum(spread, (module.scales - module.scales[:1]).abs().max())
    return float(spread)
