"""Where each branch of a layer runs: folded into the kernel or on the feature map.

Every OREPA branch is linear with no norm inside, so it gives the same output
either way (docs/benchmarks.md, "Branch placement"). Folded, its cost is set
by the kernel's shape alone; on the feature map, by the batch and the
resolution too, and it keeps its intermediate map for the backward pass.
Each branch states both costs for an input shape (:class:`BranchCost`); the
``'auto'`` placement runs a branch on the feature map only where that is
cheaper in multiply-adds *and* keeps no more elements than folding
materializes, so it can cost neither more time nor more memory by the model.
"""
import dataclasses
import math
from typing import Sequence, Tuple


@dataclasses.dataclass(frozen=True)
class BranchCost:
    """Forward cost of one branch on one input shape, both ways.

    Args:
        kernel_macs (int): Multiply-adds (or elementwise operations) to fold the
            branch into the kernel.
        kernel_elements (int): Elements folding materializes (the branch's
            kernel; its gradient takes as many in the backward pass).
        feature_macs (int): Multiply-adds to run the branch on the feature map,
            beyond what the folded conv costs anyway.
        feature_elements (int): Elements the feature-map run keeps for the
            backward pass (its intermediate map).
    """

    kernel_macs: int
    kernel_elements: int
    feature_macs: int
    feature_elements: int

    @property
    def feature_side_is_cheaper(self) -> bool:
        return (self.feature_macs < self.kernel_macs
                and self.feature_elements <= self.kernel_elements)


@dataclasses.dataclass(frozen=True)
class InputGeometry:
    """The sizes a branch's cost depends on, for one input.

    Args:
        batch (int): Batch size.
        in_pixels (int): ``H * W`` of the input.
        out_pixels (int): ``H' * W'`` of the output (each side divided by the
            stride, rounded up: the cost model ignores borders).
    """

    batch: int
    in_pixels: int
    out_pixels: int

    @classmethod
    def of(cls, input_shape: Sequence[int], stride: Tuple[int, int]) -> 'InputGeometry':
        batch, _, height, width = input_shape
        out = math.ceil(height / stride[0]) * math.ceil(width / stride[1])
        return cls(batch, height * width, out)


def feature_side_branches(costs: Sequence[BranchCost]) -> Tuple[int, ...]:
    """Indices of the branches ``'auto'`` runs on the feature map."""
    return tuple(index for index, cost in enumerate(costs) if cost.feature_side_is_cheaper)
