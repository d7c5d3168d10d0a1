"""Mixed precision on machines without a GPU."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast
from torch import nn


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` with the forward under CPU ``torch.autocast``.

    mmengine's ``AmpOptimWrapper`` needs a GPU (it asserts one); on the CPU,
    autocast runs convs and matrix products in bfloat16, which needs no loss
    scaling. ``tools/train.py --amp`` picks this wrapper when CUDA is absent.
    A model on a GPU is refused with an error naming ``AmpOptimWrapper``.

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float16'``.
        **kwargs: As mmengine's ``OptimWrapper``.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(f"dtype must be one of ('bfloat16', 'float16'), got {dtype!r}")
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        # CPU autocast leaves a model on another device in float32: refuse
        # rather than train it without mixed precision and without a word.
        devices = sorted({param.device.type for param in model.parameters()} - {'cpu'})
        if devices:
            raise ValueError(
                f"CPUAmpOptimWrapper autocasts on the CPU only, but the model's parameters are "
                f"on {devices}: use mmengine's optim_wrapper type 'AmpOptimWrapper' "
                "(dtype='float16' with loss scaling, or 'bfloat16') on a GPU")
        with super().optim_context(model), autocast(device_type='cpu', dtype=self.cast_dtype):
            yield
