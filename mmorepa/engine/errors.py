"""The one error type of the engine and the tools."""


class ReparamError(ValueError):
    """Something the user can fix: a checkpoint, config or path that cannot be
    loaded, converted, exported or verified as asked.

    The message names what is wrong (keys, paths, values) on one line; the
    tools print it as ``error: <message>`` and exit with status 1.
    """
