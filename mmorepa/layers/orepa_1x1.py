"""OREPA1x1Conv2d: Rep-1x1, the re-parameterized 1x1 conv of bottlenecks (docs/method.md)."""
from typing import Optional

from mmengine.registry import MODELS

from .branched_conv import BranchedConv2d
from .branch_sum import BranchSum
from .orepa_branches import LinearChainBranch, OriginBranch

# Rep-1x1 starts its kernels Kaiming-uniform with slope 1 (published).
REP1X1_KAIMING_A = 1.0
REP1X1_INIT_SCALES = {'origin': 1.0, '1x1_1x1': 0.5}


@MODELS.register_module()
class OREPA1x1Conv2d(BranchedConv2d):
    """Two-branch 1x1 conv: a plain 1x1 kernel plus a chain of two 1x1 kernels.

    Registered as ``'OREPA1x1Conv2d'``. Squeezes to a plain 1x1 conv.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Must be 1.
        stride, padding, dilation, bias, padding_mode: As ``nn.Conv2d``.
        groups (int): Must be 1 (the chain's identity start needs dense kernels).
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        placement (str): Where the branches run in training: ``'auto'``
            (default), ``'kernel'`` or ``'feature'``
            (:class:`~mmorepa.layers.ForwardPolicy`).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = False,
                 padding_mode: str = 'zeros',
                 scaling: Optional[str] = 'vector',
                 placement: str = 'auto') -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, placement=placement)
        if self.kernel_size != (1, 1):
            raise ValueError(f'kernel_size must be 1 for OREPA1x1Conv2d, got {kernel_size!r}')
        if groups != 1:
            raise ValueError(f'groups must be 1 for OREPA1x1Conv2d, got {groups}')
        geometry = (in_channels, out_channels, 1, 1, REP1X1_KAIMING_A)
        branches = {'origin': OriginBranch(*geometry), '1x1_1x1': LinearChainBranch(*geometry)}
        self.branches = BranchSum(branches, REP1X1_INIT_SCALES, out_channels, scaling)
