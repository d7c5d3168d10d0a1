"""How well the deployed kernels fit INT8: their per-channel spread.

Per-output-channel INT8 gives each channel 255 levels over ``[-max|w|, max|w|]``.
A channel whose peak is far above its typical weight (``max|w| / std``) spends
most levels on a few weights; channels whose peaks differ widely
(``max over channels / median over channels``) would also hurt per-tensor INT8.
The weight SQNR under per-channel INT8 sums both up. docs/int8.md.
"""
from typing import Dict

import numpy as np

from .evaluation import sqnr_db
from ..layers.int8_grid import INT8_MAX


def channel_stats(weight: np.ndarray) -> Dict[str, float]:
    """Spread of one deployed conv weight ``(O, I/g, k, k)``, BatchNorm folded in.

    Returns:
        dict: ``peak_to_std`` (median over channels of ``max|w| / std(w)``),
        ``channel_range`` (largest channel peak over the median one),
        ``sqnr_per_channel_db`` and ``sqnr_per_tensor_db`` (of the weight
        rounded to symmetric INT8 per output channel, and per tensor).
    """
    flat = np.asarray(weight, dtype=np.float64).reshape(len(weight), -1)
    peaks = np.abs(flat).max(axis=1)
    spread = flat.std(axis=1)
    live = peaks > 0
    per_channel = np.where(live, peaks, 1.0)[:, None] / INT8_MAX
    per_tensor = max(peaks.max(), 1e-300) / INT8_MAX
    return dict(
        peak_to_std=float(np.median(peaks[live] / np.maximum(spread[live], 1e-300)))
        if live.any() else 0.0,
        channel_range=float(peaks.max() / max(np.median(peaks), 1e-300)),
        sqnr_per_channel_db=sqnr_db(flat, np.round(flat / per_channel) * per_channel),
        sqnr_per_tensor_db=sqnr_db(flat, np.round(flat / per_tensor) * per_tensor))
