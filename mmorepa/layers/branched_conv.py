"""A generated-kernel conv whose kernel is one weighted branch sum."""
from typing import List, Optional, Sequence, Tuple

from torch import Tensor

from .generated_kernel import GeneratedKernelConv2d
from .placement import BranchCost, InputGeometry, feature_side_branches


class BranchedConv2d(GeneratedKernelConv2d):
    """A re-param conv whose kernel is ``self.branches`` (a :class:`BranchSum`
    the subclass builds) plus the optional bias.

    Each branch can fold into the kernel or run on the feature map in
    training; the policy's ``placement`` says which (``'auto'``: per branch,
    from the costs each states for the input's shape,
    :mod:`mmorepa.layers.placement`).
    """

    def squeezed_kernel(self) -> Tuple[Tensor, Optional[Tensor]]:
        return self.branches.kernel(), self.bias

    def set_squeezed_kernel(self, kernel: Tensor, bias: Optional[Tensor] = None) -> None:
        self._check_squeezed(kernel, bias)
        self.branches.set_kernel(kernel)
        self._set_bias(bias)

    def generate_kernel(self, feature_side: Sequence[int] = ()
                        ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        return self.branches.kernel(skip=feature_side), self.bias

    def branch_names(self) -> List[str]:
        return list(self.branches)

    def feature_side(self, input_shape: Sequence[int]) -> Tuple[int, ...]:
        if self.forward_policy.placement == 'feature':
            return tuple(range(len(self.branches)))
        return self._remembered_placement(
            input_shape, lambda: feature_side_branches(self.branch_costs(input_shape)))

    def branch_costs(self, input_shape: Sequence[int]) -> List[BranchCost]:
        return self.branches.placement_costs(InputGeometry.of(input_shape, self.stride))

    def feature_output(self, x, feature_side, convolve):
        return self.branches.feature_output(x, feature_side, convolve)
