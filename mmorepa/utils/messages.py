"""Lists of names in error messages."""
from typing import Iterable

# Lists in messages are cut after this many names.
MAX_NAMES_SHOWN = 12


def name_list(names: Iterable[str]) -> str:
    """``names`` sorted and joined by commas, cut after a dozen with a count."""
    names = sorted(names)
    shown = ', '.join(names[:MAX_NAMES_SHOWN])
    hidden = len(names) - MAX_NAMES_SHOWN
    return shown + (f', ... and {hidden} more' if hidden > 0 else '')
