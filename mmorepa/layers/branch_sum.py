"""A learnable, per-output-channel weighted sum of branch kernels."""
from typing import Callable, Collection, Dict, List, Optional

import torch
from torch import Tensor, nn

from ..kernels import solver_tensor
from ..utils import check_choice
from .placement import BranchCost, InputGeometry

SCALINGS = ('vector', 'scalar', None)


class BranchSum(nn.ModuleDict):
    """Kernel ``sum_b scale_b[o] * K_b[o]`` over named branch kernels.

    OREPA replaces each branch's BatchNorm by a linear scale so that the whole
    block stays linear and can be squeezed every forward pass (paper, sec. 3,
    "Block Linearization"; docs/method.md).

    The sum starts from a branch whose kernel costs no more than a zero one
    (``starts_sum``), if any. The branch that can hold any kernel (``origin``,
    else ``1x1_kxk``: the lowest ``absorb_rank``) is added last. Training does
    not care about the order; :meth:`set_kernel` does: the last addition
    rounds the kernel it sets to within one rounding of the wanted one, where
    an earlier one would carry the rounding of the larger random branches
    after it.

    Args:
        branches (dict[str, nn.Module]): Name to branch
            (:mod:`~mmorepa.layers.orepa_branches`): ``kernel(scale)`` returns
            its kernel with its output rows multiplied by ``scale``,
            ``new_kernel(scale)`` the same as a new tensor and
            ``add_kernel_to(kernel, scale)`` adds it in place; all kernels
            have the same shape.
        init_scales (dict[str, float]): Initial scale of each branch.
        out_channels (int): Length of a vector scale.
        scaling (str | None): ``'vector'``: one scale per output channel and
            branch (default, the paper's choice); ``'scalar'``: one per branch;
            ``None``: plain sum (Table 3 ablations).
    """

    def __init__(self,
                 branches: Dict[str, nn.Module],
                 init_scales: Dict[str, float],
                 out_channels: int,
                 scaling: Optional[str] = 'vector') -> None:
        super().__init__(branches)
        self.scaling = check_choice('scaling', scaling, SCALINGS)
        self.init_scales = tuple(float(init_scales[name]) for name in branches)
        if scaling is None:
            self.register_parameter('scales', None)
        else:
            shape = (len(branches), out_channels if scaling == 'vector' else 1)
            self.scales = nn.Parameter(torch.empty(shape))
        self.reset_scales()
        ranked = [(branch.absorb_rank, index) for index, branch in enumerate(self.values())
                  if branch.absorb_rank is not None]
        self.absorber: Optional[int] = min(ranked)[1] if ranked else None
        others = [index for index in range(len(self)) if index != self.absorber]
        # A branch whose kernel costs no more than a zero one starts the sum.
        branches = list(self.values())
        others.sort(key=lambda index: not branches[index].starts_sum)
        self.order = others + ([] if self.absorber is None else [self.absorber])

    def reset_scales(self) -> None:
        if self.scales is not None:
            with torch.no_grad():
                initial = torch.tensor(self.init_scales, dtype=self.scales.dtype,
                                       device=self.scales.device)
                self.scales.copy_(initial[:, None].expand_as(self.scales))

    def _scale(self, index: int) -> Optional[Tensor]:
        return None if self.scales is None else self.scales[index]

    def _sum(self, indices) -> Optional[Tensor]:
        branches = list(self.values())
        indices = list(indices)
        if not indices:
            return None
        # One kernel, started by the first branch, that every other branch adds
        # itself to, in the parameters' dtype (under autocast the products come
        # in the autocast dtype and are widened as they are added); each branch
        # applies its scale where it is cheapest (see orepa_branches).
        first, *rest = indices
        kernel = branches[first].new_kernel(self._scale(first))
        for index in rest:
            kernel = branches[index].add_kernel_to(kernel, self._scale(index))
        return kernel

    def kernel(self, skip: Collection[int] = ()) -> Optional[Tensor]:
        """The weighted kernel sum; without the branches ``skip`` names (their
        indices), ``None`` if that leaves none."""
        return self._sum(index for index in self.order if index not in skip)

    def placement_costs(self, geometry: InputGeometry) -> List[BranchCost]:
        """Each branch's :class:`BranchCost` for one input, in branch order."""
        return [branch.placement_cost(geometry) for branch in self.values()]

    def feature_output(self, x: Tensor, indices: Collection[int],
                       convolve: Callable[..., Tensor]) -> Tensor:
        """The sum of the named branches run on the feature map ``x``
        (:meth:`~mmorepa.layers.orepa_branches._Branch.feature_output`)."""
        branches = list(self.values())
        out = None
        for index in indices:
            branch_out = branches[index].feature_output(x, self._scale(index), convolve)
            out = branch_out if out is None else out + branch_out
        return out

    @torch.no_grad()
    def set_kernel(self, target: Tensor) -> None:
        """Make :meth:`kernel` equal ``target`` by solving one branch.

        The branch added last (see above) is set to ``target`` minus the sum
        of the others, as :meth:`kernel` computes it; the others keep their
        values, so the branches stay as diverse as their random starts. Solved
        in float64 on the CPU (:func:`~mmorepa.kernels.solver_tensor`) and
        copied back into the parameters, which keep their device and dtype.

        Args:
            target (Tensor): The wanted kernel.

        Raises:
            ValueError: No branch can hold an arbitrary kernel, or the one that
                can has a zero scale where the kernel is not zero.
        """
        if self.absorber is None:
            raise ValueError(f'none of the branches {tuple(self)} can hold an arbitrary '
                             "kernel (keep 'origin' or '1x1_kxk' to start from stock weights)")
        rest = self._sum(self.order[:-1])
        term = solver_tensor(target) - (0 if rest is None else solver_tensor(rest))
        scale = None if self.scales is None else solver_tensor(self.scales[self.absorber])
        list(self.values())[self.absorber].absorb(term, scale)
