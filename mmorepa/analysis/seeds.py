"""Results over several seeds: every run kept, every number summarized by its
spread (mean, sample standard deviation, min and max).

On the demo data one validation image is 0.28 top-1 points and a run's
accuracy moves by several points from seed to seed, so one run says little;
two results are called different only when they differ by more than their
spreads (:func:`exceeds_spread`).
"""
import math
import statistics
from typing import Dict, Iterable, List, Sequence


def seed_work_dir(work_dir: str, seed: int) -> str:
    """The work dir of one seed's run: ``work_dir`` itself for seed 0 (the
    single-seed layout, so its finished runs are reused), ``work_dir-seedN``
    otherwise.

    Args:
        work_dir (str): The work dir of the run at seed 0.
        seed (int): The seed.

    Returns:
        str: The seed's work dir.
    """
    return work_dir if seed == 0 else f'{work_dir}-seed{seed}'


def spread(values: Iterable[float]) -> Dict[str, float]:
    """Mean, sample standard deviation, min and max of ``values``.

    Args:
        values (Iterable[float]): One value per seed (at least one).

    Returns:
        dict: ``mean``, ``std`` (NaN for a single value: one run has no
        spread), ``min``, ``max`` and ``n``.

    Raises:
        ValueError: ``values`` is empty.
    """
    values = [float(value) for value in values]
    if not values:
        raise ValueError('values must hold at least one value, got none')
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else math.nan,
                min=min(values), max=max(values), n=len(values))


def spreads(runs: Sequence[dict], keys: Iterable[str]) -> Dict[str, dict]:
    """:func:`spread` of each of ``keys`` over ``runs``.

    Args:
        runs (Sequence[dict]): One dict per seed, each holding every key.
        keys (Iterable[str]): The numbers to summarize.

    Returns:
        dict: Key -> :func:`spread`.
    """
    return {key: spread(run[key] for run in runs) for key in keys}


def format_spread(stats: dict, digits: int = 2, ranges: bool = True) -> str:
    """``mean ± std (min-max)``; the value alone for a single run.

    Args:
        stats (dict): A :func:`spread`.
        digits (int): Decimals. Defaults to 2.
        ranges (bool): Append ``(min-max)``. Defaults to True.

    Returns:
        str: The formatted spread.
    """
    mean = f'{stats["mean"]:.{digits}f}'
    if stats['n'] == 1:
        return mean
    text = f'{mean} ± {stats["std"]:.{digits}f}'
    if ranges:
        text += f' ({stats["min"]:.{digits}f}-{stats["max"]:.{digits}f})'
    return text


def exceeds_spread(first: dict, second: dict) -> bool:
    """Whether two results differ by more than their spread: the gap between
    the means exceeds the sum of the standard deviations (the mean ± std
    intervals do not overlap). A single run has no spread: never a difference.

    Args:
        first (dict): A :func:`spread`.
        second (dict): Another.

    Returns:
        bool: True when the gap exceeds the spread.
    """
    if min(first['n'], second['n']) < 2:
        return False
    gap = abs(first['mean'] - second['mean'])
    return gap > first['std'] + second['std']


def seed_list(count: int) -> List[int]:
    """The seeds of ``count`` runs: ``0 .. count - 1`` (seed 0 is the single run's).

    Args:
        count (int): Positive.

    Returns:
        list[int]: The seeds.

    Raises:
        ValueError: ``count`` is not a positive int.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f'count must be a positive int, got {count!r}')
    return list(range(count))
