"""How a generated-kernel layer makes its output: one typed policy per layer.

What a layer *is* (geometry, branches, squeezed kernel, checkpoint forms)
lives in the layer classes; how its forward pass computes the output lives
here, as one frozen :class:`ForwardPolicy`, so that a new way of computing is
a new field rather than a flag in every file that configures layers.
:func:`~mmorepa.layers.set_forward_policy` changes fields on every layer of a model.
"""
import dataclasses
from typing import Optional

from ..utils import check_choice

#: Where the branches of a layer run during training (docs/benchmarks.md,
#: "Branch placement"): ``'kernel'`` folds every branch into the kernel
#: (the paper's OREPA); ``'feature'`` runs every branch on the feature map
#: (as an offline block does); ``'auto'`` chooses per branch and input shape
#: from the layer's cost model (:mod:`mmorepa.layers.placement`).
PLACEMENTS = ('kernel', 'feature', 'auto')


@dataclasses.dataclass(frozen=True)
class ForwardPolicy:
    """How a generated-kernel layer computes its forward pass.

    None of the fields changes the layer's value, its state dict or its
    squeezed conv; they decide cost, and rounding within float tolerance.

    Args:
        placement (str): One of :data:`PLACEMENTS`. Default: ``'auto'``.
        cache_kernel (bool): Reuse the squeezed kernel while nothing it depends
            on changes, when no gradient has to flow into it (eval mode,
            ``no_grad``, frozen layers; :class:`~mmorepa.layers.KernelCache`).
            Default: True.
        compile_kernel (bool): Generate the kernel with ``torch.compile``
            (:mod:`mmorepa.layers.compiled_kernel`). Default: False.
        kernel_under_autocast (bool): Under ``torch.autocast``, generate the
            kernel in the autocast dtype (default) or, if False, in float32
            (docs/recipes.md, "Mixed precision (AMP)").
        kernel_quantizer (KernelQuantizer, optional): Convolve with the INT8
            deploy grid of the kernel (:func:`mmorepa.layers.quantize_kernels`
            sets it, per layer: it holds the norm the layer folds). The grid
            exists only for the whole folded kernel, so every branch folds
            while it is set, whatever ``placement`` says (``'feature'`` is
            refused). Default: None.
    """

    placement: str = 'auto'
    cache_kernel: bool = True
    compile_kernel: bool = False
    kernel_under_autocast: bool = True
    kernel_quantizer: Optional[object] = None

    def __post_init__(self) -> None:
        check_choice('placement', self.placement, PLACEMENTS)
        for name in ('cache_kernel', 'compile_kernel', 'kernel_under_autocast'):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f'{name} must be a bool, got {getattr(self, name)!r}')
        if self.kernel_quantizer is not None and self.placement == 'feature':
            raise ValueError("placement='feature' has no folded kernel to put on the INT8 "
                             "grid: use 'auto' or 'kernel' with quantize_kernels")

    @property
    def folds_every_branch(self) -> bool:
        """Whether every branch folds into the kernel whatever the input."""
        return self.placement == 'kernel' or self.kernel_quantizer is not None
