"""OREPAResNet: a ResNet whose convs are OREPA (or DBB) blocks, squeezable to
the stock ResNet of mmpretrain, mmdet and mmseg."""
from typing import Optional, Sequence, Union

from mmengine.registry import MODELS
from mmseg.models.backbones import ResNet
from mmseg.models.backbones.resnet import Bottleneck
from mmseg.models.backbones.resnext import Bottleneck as GroupedBottleneck
from torch import nn

from ..layers import (OREPA_BRANCHES, AbsentNorm, DBBConv2d, conv_norm_pairs,
                      drop_biases_before_norms, reparameterize, set_submodule)
from ..utils import check_choice
from .reparam_backbone import ReparamBackbone

REPARAM_MODES = ('orepa', 'dbb', None)
# Defaults of OREPAResNet (mmseg's ResNet) that the stock ResNet of another
# library has different defaults for: written out so the meaning is kept.
STOCK_RESNET_DEFAULTS = dict(out_indices=(0, 1, 2, 3), norm_eval=False,
                             zero_init_residual=True, stem_channels=64)
# Arguments of mmseg's ResNet that mmpretrain's stock ResNet does not take
# (accepted only when unset: None, False or all False).
NOT_IN_MMPRETRAIN = ('pretrained', 'dcn', 'stage_with_dcn', 'plugins', 'multi_grid',
                     'contract_dilation')


def _check_stage_args(depth, num_stages, strides, dilations, out_indices, arch_settings):
    check_choice('depth', depth, sorted(arch_settings))
    check_choice('num_stages', num_stages, (1, 2, 3, 4))
    if len(strides) != num_stages or len(dilations) != num_stages:
        raise ValueError(f'strides ({len(strides)} given) and dilations ({len(dilations)} '
                         f'given) must each have num_stages={num_stages} entries')
    bad = [i for i in out_indices if not -num_stages <= i < num_stages]
    if bad:
        raise ValueError(f'out_indices {tuple(out_indices)} must lie in '
                         f'[0, num_stages={num_stages}); got {bad}')


@MODELS.register_module()
class OREPAResNet(ReparamBackbone, ResNet):
    """ResNet / ResNeXt trained with OREPA (or DBB) blocks; deploys as the stock ResNet.

    A drop-in for ``type='ResNet'`` / ``'ResNetV1c'`` / ``'ResNeXt'`` in
    mmpretrain, mmdet and mmseg configs: every argument of the stock ResNets
    keeps its meaning (mmseg's ``ResNet`` is the base, so ``multi_grid``,
    ``contract_dilation``, ``dcn``, ``plugins`` and ``pretrained`` work too), and
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` with a stock ResNet
    checkpoint starts it as exactly that network (see :class:`ReparamBackbone`).
    After :meth:`switch_to_deploy` its state dict loads with ``strict=True``
    into the stock ResNet of the same arguments.

    The published OREPA-ResNet (``reparam='orepa'``): linear deep stem for the
    7x7 stem conv, OREPA blocks for the 3x3 convs, Rep-1x1 for the 1x1 convs
    of bottlenecks and a plain conv-BN shortcut in basic blocks. The norm the
    ResNet puts after each conv is the OREPA post-addition norm.

    The published DBB-ResNet (``reparam='dbb'``): every 3x3 conv-BN pair becomes
    a Diverse Branch Block (whose four branches carry their norms, from
    ``norm_cfg``); the 7x7 stem and the 1x1 convs stay plain conv-BN.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        reparam (str | None): ``'orepa'`` (default), ``'dbb'`` or ``None``
            (plain ResNet, ``conv_cfg`` as given).
        branches (Sequence[str]): OREPA branches of the k x k blocks and of the
            stem generators (Table 2 rows). Default: all six.
        scaling (str | None): ``'vector'`` (default), ``'scalar'``, ``None``
            (Table 3 rows).
        rep_1x1 (bool | None): Rep-1x1 on the 1x1 convs. ``None`` (default):
            the published choice, on for bottlenecks and off for basic blocks.
        linear_stem (bool): The linear deep stem for the 7x7 stem conv; else a
            single OREPA 7x7 block. Default: True.
        groups (int): ResNeXt cardinality (bottlenecks only). Default: 1.
        width_per_group (int): ResNeXt width per group (mmpretrain's name).
            Default: 4.
        base_width (int, optional): mmdet / mmseg's name for ``width_per_group``.
        deploy (bool): Build the squeezed (stock ResNet) form directly.
        branch_placement (str): Where the OREPA branches run in training:
            ``'auto'`` (default: per layer, branch and input shape, whichever
            costs less), ``'kernel'`` (all folded, the paper's OREPA) or
            ``'feature'`` (docs/benchmarks.md, "Branch placement").
        compile_kernels (bool): Generate the kernels with ``torch.compile``:
            faster steps after a compile of a minute or so per run (the
            compiled code is kept on disk). Default: False.
        kernels_under_autocast (bool): Under AMP, generate the kernels in the
            autocast dtype (default) or, if False, in float32 (faster on CPUs
            without native bfloat16; docs/recipes.md, "Mixed precision (AMP)").
        quantize_kernels (bool | str): Train every OREPA layer on the INT8 grid
            of the conv it deploys as: ``True`` (or ``'full'``), ``'reduced'``
            (x86 CPUs without VNNI; docs/int8.md). Default: False.
        **kwargs: Every other argument of mmseg's ``ResNet`` (``in_channels,
            stem_channels, base_channels, num_stages, strides, dilations,
            out_indices, style, deep_stem, avg_down, frozen_stages, conv_cfg,
            norm_cfg, norm_eval, dcn, stage_with_dcn, plugins, multi_grid,
            contract_dilation, with_cp, zero_init_residual, pretrained,
            init_cfg``), same meaning.
    """

    REPARAM_ONLY_ARGS = ('reparam', 'branches', 'scaling', 'rep_1x1', 'linear_stem', 'deploy',
                         'groups', 'width_per_group', 'base_width', 'branch_placement',
                         'compile_kernels', 'kernels_under_autocast', 'quantize_kernels')
    #: The stock backbone's type, and the stem arguments this class fixes.
    STOCK_TYPE = 'ResNet'
    STEM_ARGS: dict = {}

    def __init__(self,
                 depth: int,
                 reparam: Optional[str] = 'orepa',
                 branches: Sequence[str] = tuple(OREPA_BRANCHES),
                 scaling: Optional[str] = 'vector',
                 rep_1x1: Optional[bool] = None,
                 linear_stem: bool = True,
                 groups: int = 1,
                 width_per_group: int = 4,
                 base_width: Optional[int] = None,
                 deploy: bool = False,
                 branch_placement: str = 'auto',
                 compile_kernels: bool = False,
                 kernels_under_autocast: bool = True,
                 quantize_kernels: Union[bool, str] = False,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 **kwargs) -> None:
        _check_stage_args(depth, num_stages, strides, dilations, out_indices,
                          self.arch_settings)
        check_choice('reparam', reparam, REPARAM_MODES)
        if reparam is not None and conv_cfg is not None:
            raise ValueError(f'conv_cfg ({conv_cfg}) is set by reparam={reparam!r}; '
                             'give conv_cfg only with reparam=None')
        if base_width is not None and base_width != width_per_group and width_per_group != 4:
            raise ValueError(f'base_width ({base_width}) and width_per_group '
                             f'({width_per_group}) name the same thing; give one')
        bottleneck = self.arch_settings[depth][0] is Bottleneck
        if groups != 1 and not bottleneck:
            raise ValueError(f'groups={groups} needs a bottleneck depth (50, 101, 152), '
                             f'got depth={depth}')
        for key, value in self.STEM_ARGS.items():
            if kwargs.setdefault(key, value) != value:
                raise ValueError(f'{type(self).__name__} has {key}={value}, got {kwargs[key]}')
        self.deploy = deploy
        self.reparam = None if deploy else reparam
        self.groups = groups
        self.width_per_group = width_per_group if base_width is None else base_width
        if self.reparam == 'orepa':
            conv_cfg = dict(type='OREPA', branches=tuple(branches), scaling=scaling,
                            rep_1x1=bottleneck if rep_1x1 is None else rep_1x1,
                            linear_stem=linear_stem)
        elif self.reparam == 'dbb':
            conv_cfg = dict(type='DBB', norm_cfg=norm_cfg)
        super().__init__(depth, num_stages=num_stages, strides=strides, dilations=dilations,
                         out_indices=out_indices, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                         **kwargs)
        # A DBB brings its own norms: the published DBB-ResNet has none after it.
        for (_, conv), (norm_name, norm) in list(conv_norm_pairs(self)):
            if isinstance(conv, DBBConv2d) and isinstance(norm, nn.modules.batchnorm._BatchNorm):
                set_submodule(self, norm_name, AbsentNorm(norm_cfg, norm.num_features))
        self.place_branches(branch_placement)
        self.compile_kernels(compile_kernels)
        self.kernels_under_autocast(kernels_under_autocast)
        if quantize_kernels:
            self.quantize_kernels(quantize_kernels)

    def make_res_layer(self, **kwargs) -> nn.Module:
        if self.groups != 1:
            kwargs.update(block=GroupedBottleneck, groups=self.groups,
                          base_width=self.width_per_group, base_channels=self.base_channels)
        return super().make_res_layer(**kwargs)

    def train(self, mode: bool = True) -> 'OREPAResNet':
        # mmseg's ResNet.train returns None; nn.Module promises self.
        super().train(mode)
        return self

    def switch_to_deploy(self) -> None:
        for name, child in self.named_children():
            setattr(self, name, reparameterize(child, inplace=True))
        drop_biases_before_norms(self)
        self.reparam = None
        self.conv_cfg = None
        self.deploy = True

    @classmethod
    def stock_config(cls, cfg: dict, scope: str) -> dict:
        """mmpretrain's / mmdet's / mmseg's ``ResNet`` (``ResNeXt`` when grouped)
        with this backbone's arguments.

        Raises:
            ValueError: An argument the scope's stock ResNet cannot take.
        """
        stock = {k: v for k, v in cfg.items() if k not in cls.REPARAM_ONLY_ARGS}
        for key, value in STOCK_RESNET_DEFAULTS.items():
            stock.setdefault(key, value)
        groups = cfg.get('groups', 1)
        width = cfg.get('base_width', cfg.get('width_per_group', 4))
        stock['type'] = cls.STOCK_TYPE
        if groups != 1:
            stock.update(type='ResNeXt', groups=groups, **cls.STEM_ARGS)
            stock['width_per_group' if scope == 'mmpretrain' else 'base_width'] = width
        if scope == 'mmpretrain':
            if stock.get('deep_stem') or cls.STEM_ARGS.get('deep_stem'):
                raise ValueError("mmpretrain's stock ResNet names its deep stem differently; "
                                 'deep_stem=True deploys under mmdet or mmseg only')
            for key in NOT_IN_MMPRETRAIN:
                value = stock.pop(key, None)
                if value and not (isinstance(value, (list, tuple)) and not any(value)):
                    raise ValueError(f"mmpretrain's stock ResNet has no {key!r}")
        return stock


@MODELS.register_module()
class OREPAResNetV1c(OREPAResNet):
    """:class:`OREPAResNet` with the V1c deep stem (three 3x3 convs, each an
    OREPA block): a drop-in for ``type='ResNetV1c'`` (mmseg's and mmdet's
    default segmentation backbone), deploying as the same."""

    STOCK_TYPE = 'ResNetV1c'
    STEM_ARGS = dict(deep_stem=True, avg_down=False)


@MODELS.register_module()
class OREPAResNetV1d(OREPAResNet):
    """:class:`OREPAResNet` with the V1d stem and average-pool downsampling: a
    drop-in for ``type='ResNetV1d'``, deploying as the same."""

    STOCK_TYPE = 'ResNetV1d'
    STEM_ARGS = dict(deep_stem=True, avg_down=True)
