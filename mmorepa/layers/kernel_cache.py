"""Reusing a squeezed kernel while nothing that decides it has changed.

The check reads no tensor value, so a cached forward on a GPU never waits for
the device (a value comparison would be one host-device synchronization per
tensor and forward).
"""
from typing import Callable, Hashable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_post_hook


def autocast_state(device_type: str) -> Tuple[bool, Optional[torch.dtype]]:
    """Whether autocast is on for ``device_type``, and its dtype."""
    if not (torch.amp.is_autocast_available(device_type)
            and torch.is_autocast_enabled(device_type)):
        return False, None
    return True, torch.get_autocast_dtype(device_type)


def _mark_stepped_parameters(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    # Fused optimizers write parameters without bumping their version
    # counters; every parameter with a gradient may have been written.
    stepped = [param for group in optimizer.param_groups for param in group['params']
               if param.grad is not None]
    torch.autograd.graph.increment_version(stepped)


# Every optimizer of the process, as torch offers post-step hooks: one global.
register_optimizer_step_post_hook(_mark_stepped_parameters)


def _tensor_record(tensor: Tensor) -> tuple:
    """What PyTorch knows about ``tensor`` without reading its values."""
    # The storage's identity (its C++ object), not its data pointer: fake and
    # meta tensors have no data.
    return (tensor.untyped_storage()._cdata, tensor._version, tensor.dtype, tensor.device,
            tensor.shape, tensor.stride(), tensor.storage_offset())


class KernelCache:
    """The last squeezed kernel of a layer and what it was computed from.

    A cached kernel is returned while each of the layer's tensors keeps its
    storage, version counter, dtype, device and layout, and the context is the
    same (what else decides the value, e.g. the autocast state when the
    kernel is generated under autocast). No tensor value is read: every
    in-place write bumps the version counter (optimizer steps, ``copy_`` under
    ``no_grad``, ``load_state_dict``; fused optimizers, which skip it, are
    marked by an optimizer post-step hook this module registers), and
    ``param.data = other`` changes the storage. Writes through a ``.data``
    alias (``param.data.copy_(other)``) are hidden from version counters by
    PyTorch's design; the layer drops its cache whenever its mode is set
    (``train()`` / ``eval()``), which mmengine's loops do around its EMA
    weight swaps, so after such a write outside a Runner call
    ``model.train(model.training)``. The storages of the cached tensors are
    held while the cache is, so a freed storage's address cannot come back as
    a false match; :meth:`clear` drops them.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._value = None
        self._key: Optional[tuple] = None
        self._storages: List[torch.UntypedStorage] = []

    def get(self, compute: Callable[[], tuple], tensors: Sequence[Tensor],
            context: Hashable = None) -> tuple:
        """``compute()``'s result, reused while ``tensors`` and ``context`` are unchanged.

        Args:
            compute (callable): Computes the value from ``tensors``.
            tensors (Sequence[Tensor]): The tensors the value is computed from.
            context (Hashable): Anything else that decides the value.
        """
        key = (context, tuple(_tensor_record(t) for t in tensors))
        if self._value is not None and key == self._key:
            return self._value
        self.clear()
        value = compute()
        self._value, self._key = value, key
        self._storages = [t.untyped_storage() for t in tensors]
        return value
