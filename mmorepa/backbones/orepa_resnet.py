"""OREPAResNet: a ResNet whose convs are OREPA (or DBB) blocks, squeezable to
the stock ResNet of mmpretrain, mmdet and mmseg."""
from typing import Optional, Sequence

from mmengine.registry import MODELS
from mmseg.models.backbones import ResNet
from mmseg.models.backbones.resnet import Bottleneck
from mmseg.models.backbones.resnext import Bottleneck as GroupedBottleneck
from torch import nn

from ..layers import OREPA_BRANCHES, drop_biases_before_norms, reparameterize
from ..utils import check_choice

REPARAM_MODES = ('orepa', 'dbb', None)


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
class OREPAResNet(ResNet):
    """ResNet / ResNeXt trained with OREPA (or DBB) blocks; deploys as the stock ResNet.

    A drop-in for ``type='ResNet'`` / ``'ResNetV1c'`` / ``'ResNeXt'`` in
    mmpretrain, mmdet and mmseg configs: every argument of the stock ResNets
    keeps its meaning (mmseg's ``ResNet`` is the base, so ``multi_grid``,
    ``contract_dilation``, ``dcn``, ``plugins`` and ``pretrained`` work too).
    After :func:`mmorepa.reparameterize` its state dict loads with
    ``strict=True`` into the stock ResNet of the same arguments.

    The published OREPA-ResNet (``reparam='orepa'``): linear deep stem for the
    7x7 stem conv, OREPA blocks for the 3x3 convs, Rep-1x1 for the 1x1 convs
    of bottlenecks and a plain conv-BN shortcut in basic blocks. The norm the
    ResNet puts after each conv is the OREPA post-addition norm.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        reparam (str | None): ``'orepa'`` (default), ``'dbb'`` (the offline
            Diverse Branch Block on every k x k conv; its branch norms come
            from ``norm_cfg``, and the backbone's norm follows the block) or
            ``None`` (plain ResNet, ``conv_cfg`` as given).
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
        deploy (bool): Build the squeezed (plain ResNet) form directly.
        **kwargs: Every other argument of mmseg's ``ResNet`` (``in_channels,
            stem_channels, base_channels, num_stages, strides, dilations,
            out_indices, style, deep_stem, avg_down, frozen_stages, conv_cfg,
            norm_cfg, norm_eval, dcn, stage_with_dcn, plugins, multi_grid,
            contract_dilation, with_cp, zero_init_residual, pretrained,
            init_cfg``), same meaning.
    """

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

    def make_res_layer(self, **kwargs) -> nn.Module:
        if self.groups != 1:
            kwargs.update(block=GroupedBottleneck, groups=self.groups,
                          base_width=self.width_per_group, base_channels=self.base_channels)
        return super().make_res_layer(**kwargs)

    def train(self, mode: bool = True) -> 'OREPAResNet':
        # mmseg's ResNet.train returns None; nn.Module promises self.
        super().train(mode)
        return self

    def squeeze(self) -> 'OREPAResNet':
        """Squeeze every block in place; the result has the stock ResNet's keys."""
        for name, child in self.named_children():
            setattr(self, name, reparameterize(child, inplace=True))
        drop_biases_before_norms(self)
        self.reparam = None
        self.conv_cfg = None
        return self
