"""What the re-param backbones share: their deploy form and their pretrained weights."""
import abc
from typing import Tuple, Union

from mmengine.model.weight_init import PretrainedInit

from ..layers import (PLACEMENTS, Squeezable, quantize_kernels, set_forward_policy,
                      weight_range_setting)
from ..utils import check_choice
from .stock_weights import load_pretrained


class ReparamBackbone(Squeezable):
    """Mixin of backbones that train with re-param layers and deploy as a stock one.

    - ``deploy=True`` builds the stock structure; :meth:`switch_to_deploy`
      converts a trained backbone in place (the names mmpretrain's
      ``tools/model_converters/reparameterize_model.py`` and its
      ``--cfg-options model.backbone.deploy=True`` test flow use);
      :meth:`squeeze` does the same for :func:`mmorepa.reparameterize`.
    - ``init_cfg=dict(type='Pretrained', ...)`` loads either form exactly
      (see :mod:`mmorepa.backbones.stock_weights`), where mmengine would load
      stock keys into a re-param backbone with ``strict=False`` and match none.
    - :meth:`stock_config` says which stock backbone of a library the squeezed
      weights load into.
    - ``branch_placement`` (an argument of both backbones): where the OREPA
      branches run in training, ``'auto'`` (default), ``'kernel'``, ``'feature'``
      (:meth:`place_branches`); ``compile_kernels=True`` compiles the kernel
      generation (:meth:`compile_kernels`); ``kernels_under_autocast=False``
      generates the kernels in float32 under AMP (:meth:`kernels_under_autocast`).
      Each sets a field of every layer's :class:`~mmorepa.layers.ForwardPolicy`.
    - ``quantize_kernels=True`` (or ``'reduced'``) trains every layer on the
      INT8 grid of the conv it deploys as (:meth:`quantize_kernels`, docs/int8.md).
    """

    #: Arguments the stock backbone does not take.
    REPARAM_ONLY_ARGS: Tuple[str, ...] = ()

    @classmethod
    @abc.abstractmethod
    def stock_config(cls, cfg: dict, scope: str) -> dict:
        """The config of the stock backbone this one deploys as.

        Args:
            cfg (dict): This backbone's config (``type`` and arguments).
            scope (str): The library whose backbone is wanted:
                ``'mmpretrain'``, ``'mmdet'`` or ``'mmseg'``.
        """

    @abc.abstractmethod
    def switch_to_deploy(self) -> None:
        """Squeeze every re-param block in place; the keys become the stock ones."""

    def place_branches(self, placement: str = 'auto') -> None:
        """Run every layer's branches in training as ``placement`` says:
        ``'auto'``, ``'kernel'`` or ``'feature'`` (docs/benchmarks.md, "Branch
        placement")."""
        check_choice('branch_placement', placement, PLACEMENTS)
        set_forward_policy(self, placement=placement)

    def compile_kernels(self, enabled: bool = True) -> None:
        """Generate every layer's kernel with ``torch.compile`` (see
        :mod:`mmorepa.layers.compiled_kernel`), or eagerly again."""
        set_forward_policy(self, compile_kernel=enabled)

    def kernels_under_autocast(self, enabled: bool = True) -> None:
        """Generate every layer's kernel under a running ``torch.autocast`` (its
        products in the autocast dtype), or in float32 (``enabled=False``)."""
        set_forward_policy(self, kernel_under_autocast=enabled)

    def quantize_kernels(self, setting: Union[bool, str] = True) -> None:
        """Convolve with the INT8 deploy kernel of every layer, norm folded in
        (:func:`mmorepa.layers.quantize_kernels`): ``True`` / ``'full'``
        or ``'reduced'`` weight range; ``False`` is float32 again."""
        self._int8_weight_range = weight_range_setting(setting)
        quantize_kernels(self, self._int8_weight_range)

    def train(self, mode: bool = True):
        # Norms replaced after building (a Runner's SyncBN conversion) are the
        # ones the layers fold: pair them again whenever training (re)starts.
        if getattr(self, '_int8_weight_range', None):
            quantize_kernels(self, self._int8_weight_range)
        return super().train(mode)

    def squeeze(self) -> 'ReparamBackbone':
        self.switch_to_deploy()
        return self

    def init_weights(self) -> None:
        configs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [cfg for cfg in configs if cfg is not None and (
            cfg['type'] == 'Pretrained' or cfg['type'] is PretrainedInit)]
        if not pretrained:
            return super().init_weights()
        # Every other init first (as mmengine orders them), then the weights.
        original = self.init_cfg
        self.init_cfg = [cfg for cfg in configs if cfg not in pretrained] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = original
        for cfg in pretrained:
            load_pretrained(self, cfg['checkpoint'], cfg.get('prefix'),
                            cfg.get('map_location', 'cpu'))
