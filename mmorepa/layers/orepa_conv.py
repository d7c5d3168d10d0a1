"""OREPAConv2d: the six-branch k x k OREPA block (paper, sec. 3; docs/method.md)."""
from typing import Optional, Sequence

from mmengine.registry import MODELS

from ..utils import check_choice
from .branched_conv import BranchedConv2d
from .branch_sum import BranchSum
from .orepa_branches import (AvgBranch, Conv1x1Branch, Conv1x1KxKBranch, OriginBranch,
                             PriorBranch, SeparableBranch)

# name -> (branch class, published initial scale)
OREPA_BRANCHES = {
    'origin': (OriginBranch, 0.25),
    'avg': (AvgBranch, 0.25),
    'prior': (PriorBranch, 0.0),
    '1x1_kxk': (Conv1x1KxKBranch, 0.5),
    '1x1': (Conv1x1Branch, 1.0),
    'dws': (SeparableBranch, 0.5),
}
# Slope of the Kaiming-uniform start of every learned kernel (published: 0).
OREPA_KAIMING_A = 0.0


def build_branch_sum(branches: Sequence[str], in_channels: int, out_channels: int,
                     kernel_size: int, groups: int, scaling: Optional[str],
                     kaiming_a: float) -> BranchSum:
    """The weighted sum of the named OREPA branch kernels, validated.

    Args:
        branches (Sequence[str]): Non-empty subset of ``OREPA_BRANCHES``.
        in_channels, out_channels, kernel_size, groups (int): Geometry.
        scaling (str | None): See :class:`BranchSum`.
        kaiming_a (float): Slope of the Kaiming-uniform start of the kernels.
    """
    if isinstance(branches, str) or not isinstance(branches, Sequence):
        raise TypeError(f'branches must be a sequence of names, got {branches!r}')
    if not branches or len(set(branches)) != len(branches):
        raise ValueError(f'branches must be non-empty and without repeats, got {branches!r}')
    for name in branches:
        check_choice('branches', name, OREPA_BRANCHES)
    modules = {
        name: OREPA_BRANCHES[name][0](in_channels, out_channels, kernel_size, groups, kaiming_a)
        for name in branches
    }
    init_scales = {name: OREPA_BRANCHES[name][1] for name in branches}
    return BranchSum(modules, init_scales, out_channels, scaling)


@MODELS.register_module()
class OREPAConv2d(BranchedConv2d):
    """Online re-parameterized ``k x k`` convolution (OREPA).

    Up to six linear branches (origin, avg, prior, 1x1-kxk, 1x1, depthwise-
    separable), each ending in a learnable scale, are squeezed into one kernel
    every forward pass; only that kernel touches the feature map. The layer has
    no norm: the backbone's norm after it is the paper's post-addition norm.
    Registered as ``'OREPAConv2d'`` for ``build_conv_layer``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Odd kernel size.
        stride, padding, dilation, groups, bias, padding_mode: As ``nn.Conv2d``.
        branches (Sequence[str]): Which branches to train, any non-empty subset
            of ``('origin', 'avg', 'prior', '1x1_kxk', '1x1', 'dws')``.
            Default: all six.
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        kaiming_a (float): Slope of the Kaiming-uniform initialization of the
            learned kernels. Default: 0 (published OREPA-ResNet).
        placement (str): Where the branches run in training: ``'auto'``
            (default), ``'kernel'`` or ``'feature'``
            (:class:`~mmorepa.layers.ForwardPolicy`).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = False,
                 padding_mode: str = 'zeros',
                 branches: Sequence[str] = tuple(OREPA_BRANCHES),
                 scaling: Optional[str] = 'vector',
                 kaiming_a: float = OREPA_KAIMING_A,
                 placement: str = 'auto') -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, placement=placement)
        if self.kernel_size[0] % 2 == 0:
            raise ValueError(f'kernel_size must be odd for OREPAConv2d, got {kernel_size!r}')
        self.branches = build_branch_sum(branches, in_channels, out_channels,
                                         self.kernel_size[0], groups, scaling, kaiming_a)
