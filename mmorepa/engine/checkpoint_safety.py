"""Let torch's weights-only unpickler read OpenMMLab checkpoints, and nothing more.

torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10 calls
``torch.load`` without saying otherwise, so the checkpoints its own Runner
writes (a ``HistoryBuffer`` per logged scalar in ``message_hub``, numpy values
in ``meta``) are refused. Switching the safe unpickler off would let a
checkpoint run arbitrary code. Instead this module allowlists exactly the
types those checkpoints hold.
"""
import importlib
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# HistoryBuffer's own statistics; mmengine adds them to `_statistics_methods`
# only when a first buffer is built, so a fresh process starts with none.
BUILTIN_STATISTICS = ('min', 'max', 'mean', 'current')


def history_buffer_method(owner: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` inside the unpickler.

    A ``HistoryBuffer`` that has been updated pickles its statistics methods
    as ``getattr(HistoryBuffer, 'mean')``. Allowlisting the real ``getattr``
    would reach any attribute of any allowlisted object; this resolves only
    those statistics methods.

    Raises:
        pickle.UnpicklingError: Anything else is asked for, as the weights-only
            unpickler refuses any other global.
    """
    allowed = set(BUILTIN_STATISTICS) | set(getattr(HistoryBuffer, '_statistics_methods', {}))
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'checkpoint asks for getattr({owner!r}, {name!r}); only '
                                 f'HistoryBuffer statistics {sorted(allowed)} are allowed')


def _numpy_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    found: List[Union[Callable, Tuple[Callable, str]]] = [np.ndarray, np.dtype]
    found += [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    # Arrays pickled under numpy 1.x name `numpy.core`, under 2.x `numpy._core`.
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in ('_reconstruct', 'scalar'):
            found.append((getattr(module, name), f'{module_name}.{name}'))
    return found


def allow_openmmlab_checkpoints() -> None:
    """Register the allowlist with ``torch.serialization.add_safe_globals``.

    Idempotent; ``weights_only`` stays on for every load.
    """
    torch.serialization.add_safe_globals([
        HistoryBuffer,
        (history_buffer_method, 'builtins.getattr'),
        (history_buffer_method, '__builtin__.getattr'),
        *_numpy_globals(),
    ])
