"""Reading untrusted checkpoints and writing outputs atomically."""
import contextlib
import os
import tempfile
from typing import Iterator, Optional

import torch

from .errors import ReparamError


def read_checkpoint(path: str) -> dict:
    """The checkpoint dict at ``path``, read by torch's weights-only unpickler.

    Checkpoints are untrusted data: only tensors, containers and the types
    :func:`allow_openmmlab_checkpoints` allows are accepted.

    Raises:
        ReparamError: The file is missing, corrupted, truncated, holds
            code or other objects, or is not a dict.
    """
    if not os.path.isfile(path):
        raise ReparamError(f'checkpoint not found: {path}')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        raise ReparamError(
            f'cannot read {path} as a weights-only torch checkpoint (corrupted, truncated, '
            f'not a checkpoint, or holding pickled objects beyond tensors): '
            f'{type(error).__name__}: {str(error).splitlines()[0]}') from error
    if not isinstance(checkpoint, dict):
        raise ReparamError(f'{path} holds a {type(checkpoint).__name__}, '
                           'not a checkpoint dict')
    return checkpoint


def is_same_file(path: str, other: str) -> bool:
    """Whether two paths name one file (also through links or other spellings)."""
    if os.path.realpath(path) == os.path.realpath(other):
        return True
    return os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other)


@contextlib.contextmanager
def atomic_output(path: str, source: Optional[str] = None) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    A reader never sees a half-written file, and a failure leaves whatever
    was at ``path`` before (the temporary file is removed).

    Args:
        path (str): Destination.
        source (str, optional): The input the output is made from: refused
            as destination.

    Raises:
        ReparamError: ``path`` is ``source``.
    """
    if source is not None and is_same_file(path, source):
        raise ReparamError(f'refusing to overwrite the input {source} with an output')
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # The extension is kept: writers such as Config.dump pick the format by it.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f'.{os.path.basename(path)}.',
                                         suffix='.tmp' + os.path.splitext(path)[1])
    os.close(handle)
    try:
        yield temporary
        # mkstemp makes the file private (0600); give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def save_atomic(obj, path: str, source: Optional[str] = None) -> None:
    """``torch.save`` through :func:`atomic_output`."""
    with atomic_output(path, source) as temporary:
        torch.save(obj, temporary)
