"""The forward pass of re-param layers that convolve with a generated kernel."""
import copy
import dataclasses
import functools
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ReparamConv2d
from .compiled_kernel import compiled_kernel
from .forward_policy import ForwardPolicy
from .kernel_cache import KernelCache, autocast_state
from .placement import BranchCost
from .stock_conv import convolve_like, unfolded_conv

# Input shapes whose branch placement a layer remembers (a detector's
# multi-scale training meets many; the choice is cheap to make again).
MAX_REMEMBERED_SHAPES = 64


class GeneratedKernelConv2d(ReparamConv2d):
    """A re-param layer whose forward pass generates its kernel from its
    parameters and convolves with it (OREPA, paper sec. 3).

    How the output is computed is the layer's :class:`ForwardPolicy`
    (``self.forward_policy``; :func:`set_forward_policy` for a whole model):

    - **Placement** (training): the branches :meth:`feature_side` names for the
      input's shape run on the feature map (:meth:`feature_output`), the others
      fold into the kernel (:meth:`generate_kernel`); same output either way.
    - **Cache**: when no gradient has to flow into the kernel (eval mode,
      ``no_grad``, frozen layers) the whole kernel is generated once and reused
      until a tensor it depends on changes (:class:`KernelCache`), so
      validation and frozen stages cost what the plain network costs. Under
      ``torch.compile`` the kernel is always generated, so the graph has no
      break.
    - **Autocast**: under ``torch.autocast`` the kernel is generated under the
      same autocast (its products in the autocast dtype, as a plain conv's
      weight would be cast anyway), or in float32
      (``kernel_under_autocast=False``); docs/recipes.md, "Mixed precision
      (AMP)", gives the measurements behind the default.
    - **Compile**: ``compile_kernel=True`` generates the kernel with
      ``torch.compile`` (:mod:`mmorepa.layers.compiled_kernel`).
    - **INT8**: a ``kernel_quantizer`` puts the kernel on its deploy grid, in
      the forward pass and in :meth:`squeeze`; every branch then folds.

    Args:
        *args: As :class:`ReparamConv2d`.
        placement (str): The policy's ``placement``: ``'auto'`` (default),
            ``'kernel'`` or ``'feature'`` (:data:`PLACEMENTS`).
        **kwargs: As :class:`ReparamConv2d`.
    """

    def __init__(self, *args, placement: str = 'auto', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.forward_policy = ForwardPolicy(placement=placement)
        self._kernel_cache = KernelCache()
        self._placements: Dict[tuple, Tuple[int, ...]] = {}

    @property
    def kernel_quantizer(self):
        """The policy's INT8 grid of the kernel, or ``None``."""
        return self.forward_policy.kernel_quantizer

    def generate_kernel(self, feature_side: Sequence[int] = ()
                        ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """``(kernel, bias)`` of the branches that fold: all but ``feature_side``
        (``kernel`` is ``None`` when none folds). Differentiable."""
        return self.squeezed_kernel()

    def branch_names(self) -> List[str]:
        """Names of the branches placement chooses for, in index order."""
        return []

    def placement_by_branch(self, feature_side: Sequence[int]) -> Dict[str, str]:
        """``{branch: 'kernel' | 'feature'}`` for a :meth:`feature_side` result."""
        return {name: 'feature' if index in feature_side else 'kernel'
                for index, name in enumerate(self.branch_names())}

    def feature_side(self, input_shape: Sequence[int]) -> Tuple[int, ...]:
        """Indices of the branches that run on the feature map in training for
        an input of ``input_shape``, as the policy says. Here: none."""
        return ()

    def branch_costs(self, input_shape: Sequence[int]) -> List[BranchCost]:
        """Each placeable branch's :class:`BranchCost` for an input of
        ``input_shape``, in :meth:`branch_names` order. Here: none."""
        return []

    def feature_output(self, x: Tensor, feature_side: Sequence[int],
                       convolve: Callable[..., Tensor]) -> Tensor:
        """The sum of the ``feature_side`` branches run on ``x``."""
        raise NotImplementedError(f'{type(self).__name__} runs no branch on the feature map')

    def _remembered_placement(self, input_shape: Sequence[int],
                              choose: Callable[[], Tuple[int, ...]]) -> Tuple[int, ...]:
        # Only 'auto' chooses by shape, so the shape alone is the key.
        key = tuple(input_shape)
        if key not in self._placements:
            if len(self._placements) >= MAX_REMEMBERED_SHAPES:
                self._placements.clear()
            self._placements[key] = choose()
        return self._placements[key]

    def _generate(self, feature_side: Tuple[int, ...]
                  ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        policy = self.forward_policy
        generate = functools.partial(self.generate_kernel, feature_side)
        if policy.compile_kernel and not torch.compiler.is_compiling():
            generate = functools.partial(compiled_kernel, self, feature_side)
        if policy.kernel_under_autocast:
            return generate()
        with torch.autocast(self._device_type(), enabled=False):
            return generate()

    def _regenerates(self, tensors: List[Tensor]) -> bool:
        if torch.compiler.is_compiling() or not self.forward_policy.cache_kernel:
            return True
        return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)

    def _convolve(self, x: Tensor, kernel: Tensor, bias: Optional[Tensor] = None,
                  groups: Optional[int] = None, as_product: bool = False) -> Tensor:
        groups = self.groups if groups is None else groups
        if self.stock_conv is not None:
            return convolve_like(self._template(groups), x, kernel, bias)
        if as_product and groups == 1 and bias is None:
            return unfolded_conv(x, kernel, self.stride, self.padding, self.dilation)
        return F.conv2d(x, kernel, bias, self.stride, self.padding, self.dilation, groups)

    def _template(self, groups: int) -> nn.Conv2d:
        """The stock conv's template, with other groups (a branch's depthwise conv)."""
        if groups == self.stock_conv.groups:
            return self.stock_conv
        source, template = getattr(self, '_regrouped_template', (None, None))
        if source is not self.stock_conv or template.groups != groups:
            source, template = self.stock_conv, copy.deepcopy(self.stock_conv)
            template.groups = groups
            # Kept outside the module tree, as the template itself.
            object.__setattr__(self, '_regrouped_template', (source, template))
        return template

    def train(self, mode: bool = True) -> 'GeneratedKernelConv2d':
        self._kernel_cache.clear()
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        policy = self.forward_policy
        tensors = list(self._state_tensors())
        feature_side: Tuple[int, ...] = ()
        if self._regenerates(tensors):
            self._kernel_cache.clear()
            if not policy.folds_every_branch:
                feature_side = self.feature_side(x.shape)
            kernel, bias = self._generate(feature_side)
        else:
            context = (autocast_state(tensors[0].device.type)
                       if policy.kernel_under_autocast else None)
            kernel, bias = self._kernel_cache.get(lambda: self._generate(()), tensors, context)
        if policy.kernel_quantizer is not None:
            kernel = policy.kernel_quantizer(kernel)
        if not feature_side:
            return self._convolve(x, kernel, bias)
        out = self.feature_output(x, feature_side, self._convolve)
        if kernel is not None:
            return self._convolve(x, kernel, bias) + out
        return out if bias is None else out + bias.to(out.dtype).reshape(1, -1, 1, 1)

    def _deploy_kernel(self) -> Tuple[Tensor, Optional[Tensor]]:
        kernel, bias = self.squeezed_kernel()
        if self.kernel_quantizer is not None:
            kernel = self.kernel_quantizer(kernel).to(kernel.dtype)
        return kernel, bias


def set_forward_policy(model: nn.Module, **fields) -> List[str]:
    """Change the named fields of every generated-kernel layer's policy.

    Args:
        model (nn.Module): Any model; its layers keep their other fields.
        **fields: Fields of :class:`ForwardPolicy`, e.g. ``placement='kernel'``.

    Returns:
        list[str]: Names of the layers changed.

    Raises:
        TypeError: A name is not a field of the policy.
        ValueError: A value is not allowed (the message names it).
    """
    known = [field.name for field in dataclasses.fields(ForwardPolicy)]
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise TypeError(f'{unknown} are not fields of ForwardPolicy; choose from {known}')
    names = []
    for name, module in model.named_modules():
        if isinstance(module, GeneratedKernelConv2d):
            module.forward_policy = dataclasses.replace(module.forward_policy, **fields)
            module._kernel_cache.clear()
            names.append(name)
    return names
