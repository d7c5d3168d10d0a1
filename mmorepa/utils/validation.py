"""Argument checks that name the argument and what it accepts."""
from typing import Any, Iterable


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is a positive int, else raise naming ``name``.

    Raises:
        TypeError: ``value`` is not an int (bools are refused too).
        ValueError: ``value`` is not positive.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int, got {type(value).__name__} ({value!r})')
    if value <= 0:
        raise ValueError(f'{name} must be positive, got {value}')
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise naming ``name``.

    Raises:
        ValueError: ``value`` is not allowed; the message lists what is.
    """
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
    return value
