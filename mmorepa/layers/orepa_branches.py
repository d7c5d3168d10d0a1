"""The branch kernels of an OREPA block (paper, sec. 3; docs/method.md).

Each branch is a module whose ``kernel(scale)`` returns its contribution as
one ``(O, I/g, k, k)`` kernel, computed from its parameters without touching a
feature map. Learned kernels start Kaiming-uniform with slope ``kaiming_a``.

The branch's scale (one value per output channel) multiplies a parameter, never
an intermediate kernel that autograd would then keep: the single-weight branches
scale their weight before the fixed spatial pattern is applied; the product
branches (1x1-kxk, separable, 1x1 chain) hand it to the kernel algebra
(``row_scale``), whose backward keeps only the factors.

Every branch can also run on the feature map instead (:meth:`_Branch.feature_output`,
equal to convolving with its kernel) and states what either way costs for an
input (:meth:`_Branch.placement_cost`, :mod:`mmorepa.layers.placement`); the
matrix-product branches (1x1-kxk, the 1x1 chain) run as their two convs there,
which is cheaper than their kernel product on small feature maps.

Branches that can hold any kernel also set their parameters so that their
scaled kernel is a given one (:meth:`_Branch.absorb`), the inverse that
starting from stock weights needs; ``absorb_rank`` orders them (lowest first),
``None`` for the others.
"""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels import (avg_pool_kernel, compose_1x1_kxk, frequency_prior, grouped_identity,
                       pad_to_kernel_size, separable_to_dense, solver_tensor)
from .placement import BranchCost, InputGeometry

# Depthwise filters per input channel in the separable branch (published value).
SEPARABLE_EXPANSION = 8
# The 1x1-kxk branch doubles its middle width for heavily grouped convs.
WIDE_MIDDLE_ABOVE_GROUPS = 4


def scale_rows(tensor: Tensor, scale: Optional[Tensor]) -> Tensor:
    """Multiply row ``o`` (the output channel) of ``tensor`` by ``scale[o]``.

    ``scale`` is ``(O,)``, ``(1,)`` (one value for all rows) or ``None`` (no-op).
    """
    if scale is None:
        return tensor
    return tensor * scale.reshape(-1, *([1] * (tensor.dim() - 1)))


def unscale_rows(change: Tensor, scale: Optional[Tensor]) -> Tensor:
    """``change`` with row ``o`` divided by ``scale[o]`` (float64).

    Raises:
        ValueError: A row that has to change has a zero scale.
    """
    if scale is None:
        return change
    scale = scale.double().expand(change.shape[0])
    stuck = (scale == 0) & (change.flatten(1).abs().amax(1) > 0)
    if stuck.any():
        raise ValueError(f'output channels {stuck.nonzero().flatten().tolist()} have a zero '
                         'scale in the branch that would hold the kernel')
    return change / scale.reshape(-1, *([1] * (change.dim() - 1)))


def scale_channels(feature_map: Tensor, scale: Optional[Tensor]) -> Tensor:
    """Multiply channel ``o`` of a ``(B, O, H, W)`` map by ``scale[o]``
    (``(O,)``, ``(1,)`` or ``None``)."""
    if scale is None:
        return feature_map
    # In the map's dtype: under autocast a conv's output is float16 / bfloat16.
    return feature_map * scale.to(feature_map.dtype).reshape(1, -1, 1, 1)


class _Branch(nn.Module):

    absorb_rank: Optional[int] = None
    # Whether :meth:`new_kernel` costs no more than a zero kernel; the branch
    # sum then starts from this branch (BranchSum).
    starts_sum = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int,
                 kaiming_a: float) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.groups = groups
        self.kaiming_a = kaiming_a

    def _new_weight(self, *shape: int) -> nn.Parameter:
        return nn.Parameter(torch.empty(shape))

    def _kaiming(self, *weights: Tensor) -> None:
        for weight in weights:
            nn.init.kaiming_uniform_(weight, a=self.kaiming_a)

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        """The branch's ``(O, I/g, k, k)`` kernel, rows multiplied by ``scale``."""
        raise NotImplementedError

    def new_kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        """:meth:`kernel` ``(scale)`` as a new tensor, in the parameters' dtype:
        the start of the branch sum, which adds the other branches to it in place."""
        weight = next(self.parameters())
        kernel = weight.new_zeros(self.out_channels, self.in_channels // self.groups,
                                  self.kernel_size, self.kernel_size)
        return self.add_kernel_to(kernel, scale)

    def add_kernel_to(self, kernel: Tensor, scale: Optional[Tensor] = None) -> Tensor:
        """Add :meth:`kernel` ``(scale)`` to ``kernel`` in place and return it.

        The branch sum accumulates into one kernel: no kernel-sized tensor per
        branch and per addition. Branches add their scaled parameters in one
        pass where their kernel is a pattern of them.
        """
        return kernel.add_(self.kernel(scale))

    def _kernel_elements(self) -> int:
        return self.out_channels * self.in_channels // self.groups * self.kernel_size**2

    def placement_cost(self, geometry: InputGeometry) -> BranchCost:
        """What folding this branch and running it on the feature map cost, for
        one input. Here: its kernel is elementwise work on parameters, and on the
        feature map it would be one more conv with that kernel, never cheaper."""
        elements = self._kernel_elements()
        return BranchCost(kernel_macs=elements, kernel_elements=elements,
                          feature_macs=elements * (1 + geometry.batch * geometry.out_pixels),
                          feature_elements=0)

    def _two_conv_cost(self, geometry: InputGeometry, depth: int, middle: int,
                       macs_per_middle: int) -> BranchCost:
        """The cost of a branch that folds as a product ``depth`` deep per
        kernel element and runs on the feature map as two convs through a
        ``middle``-channel map at the output's resolution, both convs together
        costing ``macs_per_middle`` multiply-adds per middle element (then the
        scale on the output)."""
        elements = self._kernel_elements()
        pixels = geometry.batch * geometry.out_pixels
        return BranchCost(kernel_macs=elements * depth, kernel_elements=elements,
                          feature_macs=pixels * (middle * macs_per_middle + self.out_channels),
                          feature_elements=pixels * (middle + self.out_channels))

    def feature_output(self, x: Tensor, scale: Optional[Tensor],
                       convolve: Callable[..., Tensor]) -> Tensor:
        """The branch run on the feature map ``x``: equal to
        ``convolve(x, self.kernel(scale))``, which it computes here.

        Args:
            x (Tensor): The layer's input.
            scale (Tensor | None): As for :meth:`kernel`.
            convolve (callable): ``(x, kernel, groups=None, as_product=False)
                -> map``, the layer's conv (stride, padding or padding class,
                dilation; its groups unless given; no bias); ``as_product``
                asks for it as one matrix product over unfolded columns where
                the geometry allows (small maps, where the library's conv
                kernels are slowest; docs/benchmarks.md, "Branch placement").
        """
        return convolve(x, self.kernel(scale))

    def absorb(self, term: Tensor, scale: Optional[Tensor]) -> None:
        """Set the parameters so that ``kernel(scale)`` is ``term`` (the
        smallest change where several would do), rounded once to their dtype.

        Only for branches with an ``absorb_rank``.

        Args:
            term (Tensor): float64 ``(O, I/g, k, k)`` on the CPU.
            scale (Tensor | None): The branch's scale, as given to :meth:`kernel`,
                float64 on the CPU (:func:`~mmorepa.kernels.solver_tensor`).
        """
        raise NotImplementedError(f'{type(self).__name__} cannot hold every kernel')


class OriginBranch(_Branch):
    """A plain ``k x k`` kernel."""

    absorb_rank = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = self._new_weight(self.out_channels, self.in_channels // self.groups,
                                       self.kernel_size, self.kernel_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._kaiming(self.weight)

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        return scale_rows(self.weight, scale)

    def add_kernel_to(self, kernel, scale=None):
        if scale is None:
            return kernel.add_(self.weight)
        return kernel.addcmul_(self.weight, scale.reshape(-1, 1, 1, 1))

    @torch.no_grad()
    def absorb(self, term: Tensor, scale: Optional[Tensor]) -> None:
        self.weight.copy_(unscale_rows(term, scale))


class _PointwiseBranch(_Branch):
    """A branch whose one parameter is a 1x1 kernel ``(O, I/g, 1, 1)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = self._new_weight(self.out_channels, self.in_channels // self.groups, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._kaiming(self.weight)


class Conv1x1Branch(_PointwiseBranch):
    """A 1x1 kernel at the centre of the ``k x k`` window."""

    # Zero but at the centre, its kernel costs what a zero kernel costs: the
    # branch sum starts from it rather than adding it to the centre of a
    # kernel in place, which autograd would undo by copying the whole kernel
    # gradient twice in backward (an in-place change of a view: CopySlices).
    starts_sum = True

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        return pad_to_kernel_size(scale_rows(self.weight, scale), self.kernel_size)

    def new_kernel(self, scale=None):
        # A new tensor unless neither padding nor scale made one.
        kernel = self.kernel(scale)
        return kernel.clone() if kernel is self.weight else kernel


class AvgBranch(_PointwiseBranch):
    """A 1x1 conv followed by ``k x k`` average pooling."""

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        # A broadcast view: added to the sum as such, it is never materialized.
        return avg_pool_kernel(scale_rows(self.weight, scale), self.kernel_size)


class PriorBranch(_PointwiseBranch):
    """A 1x1 conv whose output channel ``o`` is filtered by the fixed prior ``F[o]``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Derived from the shape alone, so it is not saved in checkpoints.
        self.register_buffer('basis', frequency_prior(self.out_channels, self.kernel_size),
                             persistent=False)

    def _apply(self, fn, recurse: bool = True):
        # A cast would round the float32 basis again (float32 -> float64 keeps
        # float32's error); derive it anew so it is the correctly rounded basis
        # in every dtype.
        super()._apply(fn, recurse)
        self.basis = frequency_prior(self.out_channels, self.kernel_size, self.basis.dtype,
                                     self.basis.device)
        return self

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        return scale_rows(self.weight, scale) * self.basis[:, None]

    def add_kernel_to(self, kernel, scale=None):
        return kernel.addcmul_(scale_rows(self.weight, scale), self.basis[:, None])


class Conv1x1KxKBranch(_Branch):
    """A 1x1 conv (an identity plus a learned delta) followed by a ``k x k`` conv.

    The 1x1 part is stored as a zero-initialized ``delta`` on a fixed
    identity-like buffer, so the branch starts as the ``k x k`` conv alone and
    weight decay pulls it towards that, as in the published model.
    """

    absorb_rank = 1

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        in_per_group = self.in_channels // self.groups
        widen = 2 if self.groups > WIDE_MIDDLE_ABOVE_GROUPS else 1
        middle = widen * self.in_channels
        self.register_buffer('identity', grouped_identity(middle, in_per_group),
                             persistent=False)
        self.delta = self._new_weight(middle, in_per_group, 1, 1)
        self.conv2 = self._new_weight(self.out_channels, middle // self.groups,
                                      self.kernel_size, self.kernel_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.delta)
        self._kaiming(self.conv2)

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        return compose_1x1_kxk(self.identity + self.delta, self.conv2, self.groups, scale)

    def add_kernel_to(self, kernel, scale=None):
        return compose_1x1_kxk(self.identity + self.delta, self.conv2, self.groups, scale,
                               accumulate_into=kernel)

    def placement_cost(self, geometry: InputGeometry) -> BranchCost:
        middle_per_group = self.conv2.shape[1]
        maps = geometry.batch * self.out_channels * geometry.out_pixels
        middle_map = geometry.batch * middle_per_group * self.groups * geometry.in_pixels
        # The k x k conv keeps its input's k*k-fold unfolded columns.
        columns = geometry.batch * middle_per_group * self.groups * self.kernel_size**2 * (
            geometry.out_pixels)
        return BranchCost(
            kernel_macs=self._kernel_elements() * middle_per_group,
            kernel_elements=self._kernel_elements(),
            feature_macs=(middle_map * self.in_channels // self.groups
                          + maps * middle_per_group * self.kernel_size**2 + maps),
            feature_elements=middle_map + columns + maps)

    def feature_output(self, x, scale, convolve):
        # The 1x1 part is pointwise and has no bias, so it commutes with any
        # padding (zeros, reflect, "same"): it runs first, at full resolution.
        middle = F.conv2d(x, self.identity + self.delta, groups=self.groups)
        return scale_channels(convolve(middle, self.conv2, as_product=True), scale)

    @torch.no_grad()
    def absorb(self, term: Tensor, scale: Optional[Tensor]) -> None:
        # Per group, kernel[o, :, s] = conv2[o, :, s] @ first: solve
        # first^T X = change^T for the smallest change X of conv2, exact while
        # `first` has full column rank (it starts as the identity).
        groups, size = self.groups, self.kernel_size * self.kernel_size
        out, mid = self.out_channels // groups, self.conv2.shape[1]
        first_1x1, conv2 = solver_tensor(self.identity + self.delta), solver_tensor(self.conv2)
        change = unscale_rows(term, scale) - compose_1x1_kxk(first_1x1, conv2, groups)
        first = first_1x1.reshape(groups, mid, -1).transpose(1, 2)
        wanted = change.reshape(groups, out, -1, size).permute(0, 2, 1, 3)
        wanted = wanted.reshape(groups, first.shape[1], out * size)
        solution = torch.linalg.lstsq(first, wanted, driver='gelsd').solution
        if (first @ solution - wanted).abs().max() > 1e-9 * wanted.abs().max():
            raise ValueError('the 1x1 part of the 1x1-kxk branch is rank-deficient and cannot '
                             'pass every kernel')
        step = solution.reshape(groups, mid, out, size).permute(0, 2, 1, 3)
        self.conv2.copy_(conv2 + step.reshape(self.conv2.shape))


class SeparableBranch(_Branch):
    """A linear depthwise-separable pair: depthwise ``k x k`` with 8 filters per
    input channel, then a (grouped) pointwise conv."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        expanded = SEPARABLE_EXPANSION * self.in_channels
        self.depthwise = self._new_weight(expanded, 1, self.kernel_size, self.kernel_size)
        self.pointwise = self._new_weight(self.out_channels, expanded // self.groups, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._kaiming(self.depthwise, self.pointwise)

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        return separable_to_dense(self.depthwise, self.pointwise, SEPARABLE_EXPANSION,
                                  self.groups, scale)

    def add_kernel_to(self, kernel, scale=None):
        return separable_to_dense(self.depthwise, self.pointwise, SEPARABLE_EXPANSION,
                                  self.groups, scale, accumulate_into=kernel)

    def placement_cost(self, geometry: InputGeometry) -> BranchCost:
        return self._two_conv_cost(geometry, SEPARABLE_EXPANSION, self.depthwise.shape[0],
                                   self.kernel_size**2 + self.out_channels // self.groups)

    def feature_output(self, x, scale, convolve):
        # The depthwise conv takes the layer's stride, padding and dilation;
        # the pointwise conv after it is 1x1.
        expanded = convolve(x, self.depthwise, groups=self.in_channels)
        return scale_channels(F.conv2d(expanded, self.pointwise, groups=self.groups), scale)


class LinearChainBranch(_Branch):
    """Two stacked 1x1 convs (Rep-1x1's second branch).

    The middle width is ``min(I, O)``; the square one of the two kernels starts
    at the identity and the other is learned from a Kaiming start.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        middle = min(self.in_channels, self.out_channels)
        self.conv1 = self._new_weight(middle, self.in_channels, 1, 1)
        self.conv2 = self._new_weight(self.out_channels, middle, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        expanding = self.out_channels > self.in_channels
        identity, learned = (self.conv1, self.conv2) if expanding else (self.conv2, self.conv1)
        with torch.no_grad():
            identity.copy_(torch.eye(identity.shape[0], dtype=identity.dtype,
                                     device=identity.device)[:, :, None, None])
        self._kaiming(learned)

    def kernel(self, scale: Optional[Tensor] = None) -> Tensor:
        return compose_1x1_kxk(self.conv1, self.conv2, row_scale=scale)

    def add_kernel_to(self, kernel, scale=None):
        return compose_1x1_kxk(self.conv1, self.conv2, row_scale=scale, accumulate_into=kernel)

    def placement_cost(self, geometry: InputGeometry) -> BranchCost:
        middle = self.conv1.shape[0]
        return self._two_conv_cost(geometry, middle, middle,
                                   self.in_channels + self.out_channels)

    def feature_output(self, x, scale, convolve):
        # Both kernels are 1x1: the layer's stride and padding go to the first.
        middle = convolve(x, self.conv1)
        return scale_channels(F.conv2d(middle, self.conv2), scale)
