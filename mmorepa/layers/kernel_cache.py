"""Reusing a squeezed kernel while nothing that decides it has changed."""
from typing import Callable, Hashable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def autocast_state(device_type: str) -> Tuple[bool, Optional[torch.dtype]]:
    """Whether autocast is on for ``device_type``, and its dtype."""
    if not (torch.amp.is_autocast_available(device_type)
            and torch.is_autocast_enabled(device_type)):
        return False, None
    return True, torch.get_autocast_dtype(device_type)


class KernelCache:
    """The last squeezed kernel of a layer and what it was computed from.

    A cached kernel is returned only if the layer's tensors hold exactly the
    values they held when it was computed (compared element by element), with
    the same dtype, device and shape, and in the same context (what else
    decides the value, e.g. the autocast state when the kernel is generated
    under autocast). Version
    counters and data pointers would be cheaper but miss writes through
    ``.data`` (mmengine's EMA swaps weights that way) and fused optimizers,
    which do not bump them; the comparison reads the parameters once, about a
    tenth of what regenerating the kernel costs. The copy it compares against
    is held while the cache is, and dropped by :meth:`clear`.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._value = None
        self._key: Optional[tuple] = None
        self._snapshot: List[Tensor] = []

    def get(self, compute: Callable[[], tuple], tensors: Sequence[Tensor],
            context: Hashable = None) -> tuple:
        """``compute()``'s result, reused while ``tensors`` and ``context`` are unchanged.

        Args:
            compute (callable): Computes the value from ``tensors``.
            tensors (Sequence[Tensor]): The tensors the value is computed from.
            context (Hashable): Anything else that decides the value.
        """
        key = (context, tuple((t.dtype, t.device, t.shape) for t in tensors))
        if self._value is not None and key == self._key and all(
                torch.equal(old, new) for old, new in zip(self._snapshot, tensors)):
            return self._value
        self.clear()
        value = compute()
        self._value, self._key = value, key
        self._snapshot = [t.detach().clone() for t in tensors]
        return value
