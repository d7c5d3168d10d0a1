"""A learnable, per-output-channel weighted sum of branch kernels."""
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from ..utils import check_choice

SCALINGS = ('vector', 'scalar', None)


class BranchSum(nn.ModuleDict):
    """Kernel ``sum_b scale_b[o] * K_b[o]`` over named branch kernels.

    OREPA replaces each branch's BatchNorm by a linear scale so that the whole
    block stays linear and can be squeezed every forward pass (paper, sec. 3.2).

    Args:
        branches (dict[str, nn.Module]): Name to module whose ``kernel(scale)``
            returns the branch kernel with its output rows multiplied by
            ``scale``; all kernels have the same shape.
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
        self.init_scales = torch.tensor([init_scales[name] for name in branches])
        if scaling is None:
            self.register_parameter('scales', None)
        else:
            shape = (len(branches), out_channels if scaling == 'vector' else 1)
            self.scales = nn.Parameter(torch.empty(shape))
        self.reset_scales()

    def reset_scales(self) -> None:
        if self.scales is not None:
            with torch.no_grad():
                self.scales.copy_(self.init_scales[:, None].expand_as(self.scales))

    def kernel(self) -> Tensor:
        kernel = None
        for index, branch in enumerate(self.values()):
            # Each branch applies its scale where it is cheapest (see orepa_branches).
            scale = None if self.scales is None else self.scales[index]
            branch_kernel = branch.kernel(scale)
            kernel = branch_kernel if kernel is None else kernel + branch_kernel
        return kernel
