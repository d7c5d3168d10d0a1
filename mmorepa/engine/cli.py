"""The tools' shared exit convention."""
import functools
import sys
from typing import Callable, List, Optional

from .errors import ReparamError


def tool_main(run: Callable[[Optional[List[str]]], Optional[int]]) -> Callable[..., int]:
    """Make a tool's ``run(argv)`` its ``main(argv)``: an exit status, errors on one line.

    A :class:`ReparamError` becomes ``error: <message>`` on stderr and status
    1; ``run`` returning ``None`` means success (0). Any other exception is a
    bug and keeps its traceback.
    """

    @functools.wraps(run)
    def main(argv: Optional[List[str]] = None) -> int:
        try:
            status = run(argv)
        except ReparamError as error:
            print(f'error: {error}', file=sys.stderr)
            return 1
        return 0 if status is None else status

    return main
