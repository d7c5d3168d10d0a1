"""OREPARepVGG: mmpretrain's RepVGG with OREPA 3x3 branches (OREPA-VGG)."""
from typing import Optional

from mmengine.registry import MODELS
from mmpretrain.models.backbones import RepVGG
from mmpretrain.models.backbones.repvgg import RepVGGBlock

from ..layers import OREPA_VGG_BRANCHES, Squeezable
from ..utils import check_choice
from .reparam_backbone import ReparamBackbone

VGG_REPARAM_MODES = ('orepa', 'repvgg')


def squeeze_repvgg_block(block: RepVGGBlock) -> RepVGGBlock:
    """Switch an mmpretrain ``RepVGGBlock`` to deploy form, OREPA 3x3 conv or not.

    A re-param 3x3 conv is squeezed to a plain conv first, so that the stock
    ``switch_to_deploy`` (which reads ``conv.weight``) fuses the block. In place.
    """
    if not block.deploy:
        if isinstance(block.branch_3x3.conv, Squeezable):
            block.branch_3x3.conv = block.branch_3x3.conv.squeeze()
        # The stock switch builds `branch_reparam` from conv_cfg: make it plain.
        block.conv_cfg = None
        block.switch_to_deploy()
    return block


@MODELS.register_module()
class OREPARepVGG(ReparamBackbone, RepVGG):
    """OREPA-VGG (docs/method.md), deploying as mmpretrain's ``RepVGG(deploy=True)``.

    mmpretrain's own ``RepVGG`` and ``RepVGGBlock`` with the ``'OREPAVGG'`` conv
    type: the 3x3 branch of every block is a five-branch OREPA conv followed by
    the branch's norm (the post-addition norm), the 1x1 and identity branches
    are RepVGG's. :meth:`switch_to_deploy` (and :func:`mmorepa.reparameterize`)
    squeezes each block into one 3x3 conv with bias under the stock name
    ``branch_reparam``. Starts exactly from a stock RepVGG checkpoint in train
    form through ``init_cfg=dict(type='Pretrained', ...)``.

    Args:
        arch (str | dict): ``'A0'``, ``'A1'``, ``'A2'`` or any arch of
            mmpretrain's ``RepVGG``.
        reparam (str): ``'orepa'`` (default) or ``'repvgg'`` (the RepVGG baseline).
        branches (Sequence[str]): Branches of the OREPA 3x3 convs.
        scaling (str | None): ``'vector'`` (default), ``'scalar'`` or ``None``.
        deploy (bool): Build the squeezed form directly.
        branch_placement (str): Where the OREPA branches run in training:
            ``'auto'`` (default: per layer, branch and input shape, whichever
            costs less), ``'kernel'`` (all folded, the paper's OREPA) or
            ``'feature'`` (docs/benchmarks.md, "Branch placement").
        compile_kernels (bool): Generate the kernels with ``torch.compile``.
            Default: False.
        kernels_under_autocast (bool): Under AMP, generate the kernels in the
            autocast dtype (default) or, if False, in float32.
        quantize_kernels (bool): Only False: see :meth:`quantize_kernels`.
        **kwargs: Every other argument of mmpretrain's ``RepVGG``, same meaning
            (``conv_cfg`` excepted: ``reparam`` sets it).
    """

    REPARAM_ONLY_ARGS = ('reparam', 'branches', 'scaling', 'deploy', 'branch_placement',
                         'compile_kernels', 'kernels_under_autocast', 'quantize_kernels')

    def __init__(self,
                 arch,
                 reparam: str = 'orepa',
                 branches=OREPA_VGG_BRANCHES,
                 scaling: Optional[str] = 'vector',
                 deploy: bool = False,
                 branch_placement: str = 'auto',
                 compile_kernels: bool = False,
                 kernels_under_autocast: bool = True,
                 quantize_kernels=False,
                 **kwargs) -> None:
        check_choice('reparam', reparam, VGG_REPARAM_MODES)
        if isinstance(arch, str):
            check_choice('arch', arch, sorted(self.arch_settings))
        if 'conv_cfg' in kwargs:
            raise ValueError('conv_cfg is set by reparam; do not give it')
        self.reparam = reparam
        conv_cfg = None
        if reparam == 'orepa' and not deploy:
            conv_cfg = dict(type='OREPAVGG', branches=tuple(branches), scaling=scaling)
        super().__init__(arch, conv_cfg=conv_cfg, deploy=deploy, **kwargs)
        self.place_branches(branch_placement)
        self.compile_kernels(compile_kernels)
        self.kernels_under_autocast(kernels_under_autocast)
        self.quantize_kernels(quantize_kernels)

    def quantize_kernels(self, setting=True) -> None:
        """Refused: a block deploys as one conv summing its OREPA 3x3 branch with
        RepVGG's 1x1 and identity branches, which run on the feature maps with
        their own norms, so that conv does not exist during training."""
        if setting:
            raise ValueError('OREPARepVGG cannot train on its INT8 deploy grid: each block '
                             "deploys as the sum of its OREPA 3x3 branch and RepVGG's 1x1 and "
                             'identity branches, which exist only after training; quantize '
                             'the deployed model with tools/quantize.py')

    def train(self, mode: bool = True) -> 'OREPARepVGG':
        # mmpretrain's RepVGG.train returns None; nn.Module promises self.
        super().train(mode)
        return self

    def switch_to_deploy(self) -> None:
        for block in self.modules():
            if isinstance(block, RepVGGBlock):
                squeeze_repvgg_block(block)
        self.deploy = True
        self.conv_cfg = None

    @classmethod
    def stock_config(cls, cfg: dict, scope: str) -> dict:
        """mmpretrain's ``RepVGG(deploy=True)`` with this backbone's arguments."""
        stock = {k: v for k, v in cfg.items() if k not in cls.REPARAM_ONLY_ARGS}
        stock.update(type='RepVGG', deploy=True)
        return stock
