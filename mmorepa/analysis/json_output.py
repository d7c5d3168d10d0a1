"""The JSON file every analysis tool writes: its settings, the machine, its results."""
import datetime
import json
import math
import os
import platform
from typing import Any

import torch


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (strict JSON has neither),
    tuples as lists and tensors as lists.

    Args:
        value (Any): Nested dicts, lists, tuples, tensors and scalars.

    Returns:
        Any: The same structure, strict-JSON safe.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def machine() -> dict:
    """What produced the numbers: CPU, cores, torch and Python versions, date.

    Returns:
        dict: ``processor``, ``cores``, ``torch``, ``torch_threads``,
        ``python`` and ``date``.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count()
    return dict(processor=cpu_model(), cores=cores, torch=torch.__version__,
                torch_threads=torch.get_num_threads(), python=platform.python_version(),
                date=datetime.date.today().isoformat())


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's)."""
    try:
        with open('/proc/cpuinfo') as file:
            for line in file:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path: str, settings: dict, content: dict) -> str:
    """Write ``{"settings", "machine", **content}`` to ``path`` (strict JSON).

    Args:
        path (str): The file (its folder is created).
        settings (dict): The command's settings.
        content (dict): The results.

    Returns:
        str: ``path``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as file:
        json.dump(json_safe(dict(settings=settings, machine=machine(), **content)), file,
                  indent=1, allow_nan=False)
    return path
