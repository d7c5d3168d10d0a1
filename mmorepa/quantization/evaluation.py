"""Comparing an INT8 model with its float32 original: output SQNR, agreement,
the library's own metric, CPU latency."""
import math
import time
from typing import Callable, Dict, List, Sequence

import numpy as np


def sqnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``actual`` against ``reference``, in dB:
    ``10 log10(sum(reference^2) / sum((reference - actual)^2))`` (inf if equal)."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((reference - np.asarray(actual, dtype=np.float64))**2))
    signal = float(np.sum(reference**2))
    if noise == 0:
        return math.inf
    return 10 * math.log10(max(signal, 1e-300) / noise)


def agreement(reference: np.ndarray, actual: np.ndarray) -> float:
    """Fraction of rows whose arg-max (predicted class) is the same."""
    return float(np.mean(np.argmax(reference, axis=1) == np.argmax(actual, axis=1)))


def latency_rounds(runs: Dict[str, Callable[[], object]], rounds: int,
                   repeats: int) -> Dict[str, List[float]]:
    """Median seconds per call of each function, per round.

    Rounds interleave the functions (each round runs every one ``repeats``
    times after one warm-up call), so a slower stretch of the machine
    affects them alike and their per-round ratios stay comparable.

    Args:
        runs (dict[str, Callable]): Functions to time, by name.
        rounds (int): Rounds (ratios get a spread over them).
        repeats (int): Calls per function and round.
    """
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            run()
            calls = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                calls.append(time.perf_counter() - start)
            times[name].append(float(np.median(calls)))
    return times


def ratio_spread(numerators: Sequence[float], denominators: Sequence[float]) -> Dict[str, float]:
    """Median, min and max over rounds of ``numerator / denominator``."""
    ratios = np.asarray(numerators) / np.asarray(denominators)
    return dict(median=float(np.median(ratios)), min=float(ratios.min()),
                max=float(ratios.max()))
