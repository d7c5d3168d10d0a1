"""A linear depthwise-separable pair (depthwise, then pointwise) as one kernel."""
from typing import Optional

from torch import Tensor

from .row_scaled_product import grouped_row_scale, row_scaled_product


def separable_to_dense(depthwise: Tensor,
                       pointwise: Tensor,
                       expansion: int,
                       groups: int = 1,
                       row_scale: Optional[Tensor] = None,
                       accumulate_into: Optional[Tensor] = None) -> Tensor:
    """Dense kernel of a depthwise conv with channel expansion and a pointwise conv.

    The depthwise conv has ``E`` filters per input channel (row ``i * E + e`` is
    expansion ``e`` of input channel ``i``); the pointwise conv mixes the
    ``E * I`` maps with ``groups`` groups. Then
    ``W[o, i] = scale[o] * sum_e pointwise[o, i*E + e] * depthwise[i*E + e]``
    per group. Its backward pass keeps no copies (see :func:`row_scaled_product`).

    Args:
        depthwise (Tensor): Kernel ``(E * I, 1, k, k)``.
        pointwise (Tensor): Kernel ``(O, E * I / g, 1, 1)``.
        expansion (int): ``E``, depthwise filters per input channel.
        groups (int): Groups of the pointwise conv (and of the result).
        row_scale (Tensor | None): Scale of each output channel, ``(O,)``, or
            ``(1,)`` for all. Default: None (no scale).
        accumulate_into (Tensor | None): A contiguous ``(O, I/g, k, k)`` kernel
            to add the result to in place and return. Default: None.

    Returns:
        Tensor: Kernel ``(O, I/g, k, k)``.
    """
    rows, _, kh, kw = depthwise.shape
    out, cols = pointwise.shape[:2]
    if rows != cols * groups or cols % expansion or out % groups:
        raise ValueError(f'depthwise {tuple(depthwise.shape)} and pointwise '
                         f'{tuple(pointwise.shape)} do not fit expansion={expansion}, '
                         f'groups={groups}')
    in_per_group = cols // expansion
    depthwise = depthwise.reshape(groups, in_per_group, expansion, kh * kw)
    pointwise = pointwise.reshape(groups, out // groups, in_per_group, expansion)
    kernel = row_scaled_product('goie,gies->gois', pointwise, depthwise,
                                grouped_row_scale(row_scale, out, groups), accumulate_into)
    return kernel.reshape(out, in_per_group, kh, kw) if accumulate_into is None else kernel
