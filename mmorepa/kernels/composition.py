"""Two convolutions in sequence, with no non-linearity between, as one kernel."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .row_scaled_product import grouped_row_scale, row_scaled_product
from .solver_tensor import solver_tensor


def _check_groups(name: str, channels: int, groups: int) -> None:
    if channels % groups:
        raise ValueError(f'{name} ({channels}) must be divisible by groups ({groups})')


def compose_1x1_kxk(first: Tensor,
                    second: Tensor,
                    groups: int = 1,
                    row_scale: Optional[Tensor] = None,
                    accumulate_into: Optional[Tensor] = None) -> Tensor:
    """Kernel of a 1x1 conv followed by a k x k conv with the same groups.

    ``W[o, i] = scale[o] * sum_t second[o, t] * first[t, i]`` within each
    group: a real matrix product, ``(O/g * k*k, T/g) @ (T/g, I/g)`` per group.
    Its backward pass keeps no copies (see :func:`row_scaled_product`).

    Args:
        first (Tensor): 1x1 kernel ``(T, I/g, 1, 1)``.
        second (Tensor): Kernel ``(O, T/g, kh, kw)``.
        groups (int): Groups of both convs. Default: 1.
        row_scale (Tensor | None): Scale of each output channel, ``(O,)``, or
            ``(1,)`` for all. Default: None (no scale).
        accumulate_into (Tensor | None): A contiguous ``(O, I/g, kh, kw)``
            kernel to add the result to in place and return. Default: None.

    Returns:
        Tensor: Kernel ``(O, I/g, kh, kw)``.
    """
    mid, in_per_group = first.shape[:2]
    out, mid_per_group, kh, kw = second.shape
    _check_groups('middle channels', mid, groups)
    _check_groups('out channels', out, groups)
    if first.shape[2:] != (1, 1) or mid_per_group * groups != mid:
        raise ValueError(f'cannot compose a {tuple(first.shape)} 1x1 kernel with a '
                         f'{tuple(second.shape)} kernel at groups={groups}')
    first = first.reshape(groups, mid_per_group, in_per_group)
    second = second.reshape(groups, out // groups, mid_per_group, kh * kw)
    kernel = row_scaled_product('gots,gti->gois', second, first,
                                grouped_row_scale(row_scale, out, groups), accumulate_into)
    return kernel.reshape(out, in_per_group, kh, kw) if accumulate_into is None else kernel


def compose_kxk_kxk(first: Tensor, second: Tensor, groups: int = 1) -> Tensor:
    """Kernel of two stacked convs (stride 1), of size ``k1 + k2 - 1``.

    ``K(s) = sum_v second(v) first(s - v)``, summed over the middle channels:
    the true convolution of the kernels. On the region that needs no padding
    this equals running ``first`` then ``second`` on the feature map.
    Computed as a transposed convolution, whose definition is exactly that sum.

    Args:
        first (Tensor): Kernel ``(M, I/g, k1, k1)``.
        second (Tensor): Kernel ``(O, M/g, k2, k2)``.
        groups (int): Groups of both convs. Default: 1.

    Returns:
        Tensor: Kernel ``(O, I/g, k1 + k2 - 1, k1 + k2 - 1)``.
    """
    mid = first.shape[0]
    out, mid_per_group = second.shape[:2]
    _check_groups('middle channels', mid, groups)
    _check_groups('out channels', out, groups)
    if mid_per_group * groups != mid:
        raise ValueError(f'cannot compose a {tuple(first.shape)} kernel with a '
                         f'{tuple(second.shape)} kernel at groups={groups}')
    # The input channels of `first` become the batch of the transposed conv.
    batch = first.transpose(0, 1)
    weight = second.reshape(groups, out // groups, mid_per_group, *second.shape[2:])
    weight = weight.transpose(1, 2).reshape(mid, out // groups, *second.shape[2:])
    return F.conv_transpose2d(batch, weight, groups=groups).transpose(0, 1)


def solve_second_kernel(first: Tensor, second: Tensor, target: Tensor,
                        groups: int = 1) -> Tuple[Tensor, float, float]:
    """The kernel closest to ``second`` whose composition with ``first`` is ``target``.

    :func:`compose_kxk_kxk` is linear in its second kernel, one matrix ``A``
    per group mapping an output channel's ``(M/g, k2, k2)`` kernel to its
    ``(I/g, K, K)`` composite. The change ``d = pinv(A) (target - A second)``
    is the smallest (least-squares) one; it is exact when ``A`` has full row
    rank. Computed in float64 on the CPU, whatever the inputs' device
    (:func:`solver_tensor`).

    Args:
        first (Tensor): Kernel ``(M, I/g, k1, k1)``.
        second (Tensor): Current second kernel ``(O, M/g, k2, k2)``.
        target (Tensor): Wanted composite ``(O, I/g, k1 + k2 - 1, k1 + k2 - 1)``.
        groups (int): Groups of both convs. Default: 1.

    Returns:
        tuple[Tensor, float, float]: The new second kernel (float64, CPU), the
        relative residual ``|A second' - target| / |target|`` and the
        condition number of ``A`` (largest over groups).
    """
    first, second, target = solver_tensor(first), solver_tensor(second), solver_tensor(target)
    expected = compose_kxk_kxk(first, second, groups).shape
    if tuple(target.shape) != tuple(expected):
        raise ValueError(f'target must have shape {tuple(expected)}, got {tuple(target.shape)}')
    mid_per_group, size = second.shape[1], second.shape[-1]
    out_per_group = second.shape[0] // groups
    unknowns = mid_per_group * size * size
    # Composing with every unit kernel gives the columns of each group's matrix.
    units = torch.eye(unknowns, dtype=torch.float64).reshape(unknowns, mid_per_group, size, size)
    solved, condition = [], 0.0
    for group, rows in enumerate(first.chunk(groups)):
        matrix = compose_kxk_kxk(rows, units).flatten(1).T
        outputs = slice(group * out_per_group, (group + 1) * out_per_group)
        current = second[outputs].flatten(1)
        wanted = target[outputs].flatten(1)
        change = torch.linalg.lstsq(matrix, (wanted - current @ matrix.T).T, driver='gelsd')
        solved.append(current + change.solution.T)
        singular = torch.linalg.svdvals(matrix)
        condition = max(condition, (singular[0] / singular[-1]).item())
    new_second = torch.cat(solved).reshape(second.shape)
    error = (compose_kxk_kxk(first, new_second, groups) - target).norm()
    residual = error / target.norm().clamp_min(torch.finfo(torch.float64).tiny)
    return new_second, residual.item(), condition
