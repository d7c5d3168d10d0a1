"""A two-factor kernel product with per-row scales, whose backward keeps no copies.

OREPA computes every branch kernel each training step, so what autograd keeps
for the backward pass is paid on every layer. Written with plain autograd,
``einsum(scale * left, right)`` saves the scaled copy of ``left`` (as large as
a kernel) and einsum's permuted copies of both factors. This function saves
only its inputs, which are parameters or small, and derives the scale's
gradient from a product the backward computes anyway, so nothing is recomputed.

Under ``torch.autocast`` the product runs in the autocast dtype, as any matrix
product does; the backward runs its products in that same dtype (float32 for
float16, whose range its sums exceed) and returns each gradient in the dtype
of its input. The backward is written with
differentiable operations only, so double backward (gradient penalties,
``gradgradcheck``) works.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def _parse(equation: str) -> Tuple[str, str, str]:
    operands, _, result = equation.replace(' ', '').partition('->')
    left, _, right = operands.partition(',')
    if not (left and right and result) or left[:2] != result[:2] or left[1] in right:
        raise ValueError(f'equation must read "LEFT,RIGHT->RESULT" with the same two leading '
                         f'row axes in LEFT and RESULT and the second one absent from RIGHT, '
                         f'got {equation!r}')
    return left, right, result


def _broadcastable(row_scale: Tensor, tensor: Tensor) -> Tensor:
    return row_scale.reshape(*row_scale.shape, *([1] * (tensor.dim() - row_scale.dim())))


def _batch_major(tensor: Tensor, axes: str, batch_axes: str,
                 row_scale: Optional[Tensor] = None) -> Tensor:
    """``tensor`` (axes named by ``axes``; rows times ``row_scale``) stored with
    the ``batch_axes`` outermost: einsum's batched product then reads each
    matrix with unit stride instead of gathering it from across the tensor.
    The scale is applied in place to the new copy (differentiable, and no
    second kernel-sized allocation)."""
    order = [axes.index(axis) for axis in batch_axes]
    order += [index for index, axis in enumerate(axes) if axis not in batch_axes]
    if order == sorted(order):
        return tensor if row_scale is None else tensor * _broadcastable(row_scale, tensor)
    inverse = sorted(range(len(order)), key=order.__getitem__)
    stored = tensor.new_empty([tensor.shape[index] for index in order]).permute(inverse)
    stored.copy_(tensor)
    return stored if row_scale is None else stored.mul_(_broadcastable(row_scale, stored))


class _RowScaledProduct(torch.autograd.Function):

    @staticmethod
    def forward(ctx, accumulator: Optional[Tensor], equation: str, left: Tensor, right: Tensor,
                row_scale: Optional[Tensor]) -> Tensor:
        product = torch.einsum(equation, left, right)
        ctx.axes = _parse(equation)
        ctx.product_dtype = product.dtype
        ctx.result_shape = product.shape
        ctx.save_for_backward(left, right, row_scale)
        if accumulator is not None:
            # Added in place while reading einsum's permuted view: one pass, no
            # kernel-sized allocation. The accumulator is taken whole and viewed
            # in the result's shape here, out of autograd's sight: an in-place
            # change of a view makes autograd copy the whole gradient twice in
            # backward (CopySlices); of the tensor itself, it passes it on.
            ctx.mark_dirty(accumulator)
            into = accumulator.view(product.shape)
            if row_scale is None:
                into.add_(product)
            else:
                into.addcmul_(product, _broadcastable(row_scale, product))
            return accumulator
        if torch.compiler.is_compiling():
            # Inductor fuses the scale into the copy by itself (and the out=
            # form below would give the traced graph wrong strides).
            product = product if row_scale is None else product * _broadcastable(
                row_scale, product)
            return product.contiguous()
        # einsum returns a permuted view; the scale is applied while copying it
        # to the contiguous layout that callers reshape without another copy.
        contiguous = torch.empty_like(product, memory_format=torch.contiguous_format)
        if row_scale is None:
            return contiguous.copy_(product)
        return torch.mul(product, _broadcastable(row_scale, product), out=contiguous)

    @staticmethod
    def backward(ctx, grad: Tensor):
        left_axes, right_axes, result_axes = ctx.axes
        left, right, row_scale = ctx.saved_tensors
        need_left, need_right, need_scale = ctx.needs_input_grad[2:]
        # The sum passes its gradient on unchanged, in the accumulator's dtype.
        grad_accumulator = grad if ctx.needs_input_grad[0] else None
        grad = grad.reshape(ctx.result_shape)
        # The forward's products ran in the output's dtype (the autocast dtype
        # under autocast); so do the backward's, whatever autocast says now,
        # but in float32 for a float16 gradient: its sums over O/g * k^2
        # scaled values overflow float16 2-5x before the kernel's gradient
        # itself does (docs/gpu.md, "What runs where"), and the
        # factors are kernel-sized. bfloat16 has float32's range and stays.
        # An accumulator may be wider than the product: the product's dtype rules.
        dtype = torch.float32 if ctx.product_dtype == torch.float16 else ctx.product_dtype
        # Both backward products sum over the rows for each axis that all three
        # tensors share: with such an axis behind the rows (the separable
        # kernel's input channel) einsum's batched products gather each matrix
        # from across the tensor, several times slower than from factors
        # stored batch-major (docs/benchmarks.md, "Branch placement").
        batch = ''.join(axis for axis in right_axes if axis in left_axes and axis in result_axes)
        with torch.autocast(grad.device.type, enabled=False):
            grad = _batch_major(grad.to(dtype), result_axes, batch)
            left_c, right_c = left.to(dtype), right.to(dtype)
            scale_c = None if row_scale is None else row_scale.to(dtype)
            grad_left = grad_right = grad_scale = None
            if need_right:
                # The scale goes to the left factor while it is stored anyway.
                grad_right = torch.einsum(f'{result_axes},{left_axes}->{right_axes}', grad,
                                          _batch_major(left_c, left_axes, batch, scale_c))
                grad_right = grad_right.to(right.dtype)
            if need_left or need_scale:
                # The gradient of the unscaled left factor; the scale's gradient
                # is its row-wise dot product with the left factor itself.
                # Contiguous, like the parameter whose gradient it becomes.
                unscaled = torch.einsum(f'{result_axes},{right_axes}->{left_axes}', grad,
                                        right_c).contiguous()
                if need_scale:
                    # As einsum, one batched product that only reads both
                    # (vecdot multiplies into a kernel-sized tensor, then sums).
                    grad_scale = torch.einsum('grx,grx->gr', unscaled.flatten(2),
                                              left_c.flatten(2)).to(row_scale.dtype)
                if need_left:
                    grad_left = unscaled if scale_c is None else unscaled * _broadcastable(
                        scale_c, unscaled)
                    grad_left = grad_left.to(left.dtype)
        return grad_accumulator, None, grad_left, grad_right, grad_scale


def row_scaled_product(equation: str, left: Tensor, right: Tensor,
                       row_scale: Optional[Tensor] = None,
                       accumulate_into: Optional[Tensor] = None) -> Tensor:
    """``einsum(equation, left, right)`` with its rows multiplied by ``row_scale``.

    The rows are the two leading axes of ``left`` and of the result (group,
    output channel); ``right`` must not have the second one. Differentiable in
    all three tensors, twice; the backward pass keeps only the inputs.

    Args:
        equation (str): ``'LEFT,RIGHT->RESULT'`` einsum equation, e.g.
            ``'gots,gti->gois'``.
        left (Tensor): The factor that carries the rows.
        right (Tensor): The other factor.
        row_scale (Tensor | None): Shape ``left.shape[:2]``; ``None``: no scale.
        accumulate_into (Tensor | None): A contiguous tensor with the result's
            elements, in any shape (a kernel whose reshape the result is), to
            add the product to, in place (autograd follows), and return;
            ``None``: a new tensor.

    Returns:
        Tensor: The scaled product, in the dtype einsum gives (the autocast
        dtype under autocast), or ``accumulate_into`` with it added.
    """
    _parse(equation)
    if row_scale is not None and row_scale.shape != left.shape[:2]:
        raise ValueError(f'row_scale must have shape {tuple(left.shape[:2])}, '
                         f'got {tuple(row_scale.shape)}')
    if accumulate_into is not None and torch.compiler.is_compiling():
        # The compiler fuses the addition by itself, and its tracing takes no
        # custom function that writes into a view.
        product = _RowScaledProduct.apply(None, equation, left, right, row_scale)
        return accumulate_into.add_(product.view(accumulate_into.shape))
    return _RowScaledProduct.apply(accumulate_into, equation, left, right, row_scale)


def grouped_row_scale(row_scale: Optional[Tensor], out_channels: int,
                      groups: int) -> Optional[Tensor]:
    """A per-output-channel scale as ``(groups, out_channels / groups)`` rows.

    Args:
        row_scale (Tensor | None): ``(out_channels,)``, ``(1,)`` (one value for
            all channels) or ``None`` (returned as is).
        out_channels (int): Output channels of the kernel.
        groups (int): Groups of the kernel.
    """
    if row_scale is None:
        return None
    if row_scale.shape not in ((out_channels, ), (1, )):
        raise ValueError(f'row_scale must have shape ({out_channels},) or (1,), '
                         f'got {tuple(row_scale.shape)}')
    return row_scale.expand(out_channels).reshape(groups, out_channels // groups)
