"""The pictures of the analysis tools (matplotlib, written to files only)."""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

# Values at or below this are drawn at it on log axes (exact zeros included).
LOG_FLOOR = 1e-18
EXACT_COLOUR, DIFFERS_COLOUR = '#55a868', '#dd8452'
SCALING_COLOURS = {'vector': '#4c72b0', 'scalar': '#dd8452', 'none': '#55a868'}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')  # files only; no display on the machines these run on
    import matplotlib.pyplot as plt
    return plt


def _save(figure, path: str) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    _pyplot().close(figure)


def _off_diagonal(matrix) -> np.ndarray:
    """``matrix`` as floats with its diagonal (always 1) set to NaN, for display."""
    values = np.array(matrix, dtype=float)
    np.fill_diagonal(values, np.nan)
    return values


def _colour_limit(matrices) -> float:
    """A symmetric colour range that fits every off-diagonal cosine: the
    contributions are nearly orthogonal, and a -1..1 range would show white."""
    largest = max((np.nanmax(np.abs(_off_diagonal(m)), initial=0.0) for m in matrices),
                  default=0.0)
    return max(0.05, math.ceil(largest * 20) / 20)


def _heat_map(axis, matrix, branches: Sequence[str], title: str, limit: float,
              labels: bool, numbers: bool = False) -> object:
    import matplotlib

    # Grey: the diagonal (1 by definition) and branches with a zero contribution.
    colours = matplotlib.colormaps['RdBu_r'].with_extremes(bad='#bbbbbb')
    values = _off_diagonal(matrix)
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, vmin=-limit, vmax=limit)
    axis.set_title(title, fontsize=8)
    ticks = range(len(branches))
    axis.set_xticks(ticks, branches if labels else [''] * len(branches), rotation=90,
                    fontsize=7)
    axis.set_yticks(ticks, branches if labels else [''] * len(branches), fontsize=7)
    if numbers:
        for (row, column), value in np.ndenumerate(values):
            if np.isfinite(value):
                axis.text(column, row, f'{value:.2f}', ha='center', va='center', fontsize=6)
    return image


def plot_layer_heat_maps(layers: Dict[str, tuple], means: Dict[tuple, dict], path: str,
                         title: str) -> None:
    """The mean branch cosines over layers (large, with values), then one heat
    map per layer; off-diagonal entries only (the diagonal is 1).

    Args:
        layers (dict): Layer name -> ``(branch names, cosine matrix)``.
        means (dict): Branch names -> ``dict(cosine=matrix, layers=count)``;
            the branch set with the most layers is drawn.
        path (str): PNG to write.
        title (str): Figure title.
    """
    plt = _pyplot()
    branches, mean = max(means.items(), key=lambda item: item[1]['layers'])
    limit = _colour_limit([matrix for _, matrix in layers.values()])
    columns = 5
    rows = max(2, math.ceil(len(layers) / columns))
    figure = plt.figure(figsize=(1.9 * (columns + 2.6), 2.1 * rows + 1.2), layout='constrained')
    grid = figure.add_gridspec(rows, columns + 2)
    axis = figure.add_subplot(grid[0:2, 0:2])
    image = _heat_map(axis, mean['cosine'], branches, f'mean of {mean["layers"]} layers',
                      limit, labels=True, numbers=True)
    for index, (name, (names, matrix)) in enumerate(layers.items()):
        axis = figure.add_subplot(grid[index // columns, 2 + index % columns])
        _heat_map(axis, matrix, names, name, limit, labels=False)
    figure.suptitle(f'{title}\n(grey: the diagonal, and branches with a zero contribution)',
                    fontsize=9)
    figure.colorbar(image, ax=figure.axes, shrink=0.4, label='cosine', location='bottom',
                    aspect=40)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_scaling_comparison(variants: Dict[str, List[dict]], path: str, title: str) -> None:
    """Per scaling, the mean branch cosines at the start and after training, and
    those of the branches' changes since the start; beside them the mean
    off-diagonal |cosine| per epoch (solid: contributions, dashed: changes).

    Args:
        variants (dict): Scaling name -> records in epoch order, each with
            ``epoch``, ``branches``, ``mean_cosine`` (matrix),
            ``mean_off_diagonal_abs`` and ``moved`` (the same for the changes
            since the first record, ``None`` in the first).
        path (str): PNG to write.
        title (str): Figure title.
    """
    plt = _pyplot()
    names = list(variants)
    rows = [('', lambda records: records[0]), ('', lambda records: records[-1]),
            ('changes since epoch 0\nto ', lambda records: records[-1]['moved'] and
             dict(records[-1]['moved'], epoch=records[-1]['epoch']))]
    figure = plt.figure(figsize=(2.9 * len(names) + 5.0, 9.6), layout='constrained')
    grid = figure.add_gridspec(3, len(names) + 1, width_ratios=[1] * len(names) + [1.4])
    for row, (label, pick) in enumerate(rows):
        picked = [pick(variants[name]) for name in names]
        if not any(picked):
            continue
        limit = _colour_limit([r['mean_cosine'] for r in picked if r])
        axes = []
        for column, (name, record) in enumerate(zip(names, picked)):
            if record:
                axes.append(figure.add_subplot(grid[row, column]))
                image = _heat_map(axes[-1], record['mean_cosine'], record['branches'],
                                  f'{name}: {label}epoch {record["epoch"]}', limit,
                                  labels=column == 0, numbers=True)
        figure.colorbar(image, ax=axes, shrink=0.8, label='cosine', pad=0.02)
    curve = figure.add_subplot(grid[:, -1])
    for name, records in variants.items():
        colour = SCALING_COLOURS.get(name)
        curve.plot([r['epoch'] for r in records], [r['mean_off_diagonal_abs'] for r in records],
                   marker='o', label=f'{name}', color=colour)
        moved = [r for r in records if r['moved']]
        curve.plot([r['epoch'] for r in moved], [r['moved']['mean_off_diagonal_abs']
                                                 for r in moved],
                   marker='s', linestyle='--', label=f'{name}, changes', color=colour)
    curve.set_xlabel('epoch')
    curve.set_ylabel('mean |cosine| between branches, over layers')
    curve.set_yscale('log')
    curve.legend(title='scaling', fontsize=8)
    curve.grid(alpha=0.3)
    figure.suptitle(f'{title}\n(grey: the diagonal, and branches with a zero contribution)',
                    fontsize=9)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_similarity_over_run(records: List[dict], path: str, title: str) -> None:
    """Mean off-diagonal |cosine| of every checkpoint of a run."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    axis.plot([r['step'] for r in records], [r['mean_off_diagonal_abs'] for r in records],
              marker='o')
    axis.set_xlabel(records[0]['unit'] if records else 'checkpoint')
    axis.set_ylabel('mean |cosine| between branches')
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    _save(figure, path)


def plot_equivalence(report: dict, path: str) -> None:
    """Relative differences of the update comparisons, and each update's part
    outside ``span{G, W_e}``, on log axes (exact zeros drawn at the floor)."""
    plt = _pyplot()
    tolerance = report['settings']['tolerance']
    comparisons = report['comparisons']
    updates = report['updates']
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4),
                                         gridspec_kw=dict(width_ratios=[1.4, 1]))
    values = [max(c['relative_difference'], LOG_FLOOR) for c in comparisons]
    left.barh(range(len(values)), values, color=[EXACT_COLOUR if c['exact'] else DIFFERS_COLOUR
                                                 for c in comparisons])
    left.set_yticks(range(len(values)), [c['comparison'] for c in comparisons], fontsize=7)
    left.invert_yaxis()
    left.set_xscale('log')
    left.axvline(tolerance, color='k', linestyle='--', linewidth=0.8)
    left.set_xlabel('|dW_e - dW_e(reference)| / |dW_e(reference)|')
    left.set_title('one SGD step: end-to-end kernel updates compared', fontsize=9)
    names = list(updates)
    spans = [max(updates[name]['outside_span'], LOG_FLOOR) for name in names]
    second = report.get('symmetry', {}).get('equal_kernels_outside_span_per_step', [])
    if len(second) > 1:  # the step after which equal kernels have separated
        names.append('c, equal kernels, step 2')
        spans.append(max(second[1], LOG_FLOOR))
    right.barh(range(len(names)), spans, color=[EXACT_COLOUR if s <= tolerance else
                                                DIFFERS_COLOUR for s in spans])
    right.set_yticks(range(len(names)), names, fontsize=7)
    right.invert_yaxis()
    right.set_xscale('log')
    right.axvline(tolerance, color='k', linestyle='--', linewidth=0.8)
    right.set_xlabel('part of dW_e outside span(G, W_e)')
    right.set_title('what no single kernel with a scale can do', fontsize=9)
    settings = report['settings']
    figure.suptitle(f'{settings["branches"]} branches, {settings["scaling"]} scales, float64 '
                    f'(dashed: tolerance {tolerance:.0e})', fontsize=10)
    _save(figure, path)


def plot_training_curves(runs: Dict[str, List[dict]], path: str, title: str,
                         first_non_finite: Optional[Dict[str, Optional[int]]] = None) -> None:
    """Loss and total gradient norm per iteration of each run (log axes).

    Args:
        runs (dict): Run name -> per-iteration records with ``loss`` and
            ``grad_norm``.
        path (str): PNG to write.
        title (str): Figure title.
        first_non_finite (dict, optional): Run name -> first iteration with a
            non-finite loss or gradient norm (marked), or ``None``.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for (key, quantity), axis in zip((('loss', 'training loss'),
                                      ('grad_norm', 'total gradient norm')), axes):
        for name, records in runs.items():
            iterations = np.arange(1, len(records) + 1)
            values = np.array([r[key] for r in records], dtype=float)
            values[~np.isfinite(values)] = np.nan  # a gap where the run has diverged
            broken = (first_non_finite or {}).get(name)
            legend = name if broken is None else f'{name} (non-finite from iteration {broken})'
            line, = axis.plot(iterations, values, label=legend, linewidth=1.2, marker='.',
                              markersize=3)
            if broken is not None:
                axis.axvline(broken, color=line.get_color(), linestyle=':', linewidth=1)
        axis.set_yscale('log')
        axis.set_xlabel('iteration')
        axis.set_ylabel(quantity)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)


def plot_weight_ranges(layers: Dict[str, List[dict]], path: str) -> None:
    """Per deployed conv (in network order) of each model: the weight SQNR under
    per-channel INT8 and the median ``max|w| / std`` of its channels."""
    plt = _pyplot()
    figure, (sqnr_axes, peak_axes) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, stats in layers.items():
        index = np.arange(1, len(stats) + 1)
        sqnr_axes.plot(index, [s['sqnr_per_channel_db'] for s in stats], marker='.', label=name)
        peak_axes.plot(index, [s['peak_to_std'] for s in stats], marker='.', label=name)
    sqnr_axes.set(xlabel='deployed conv', ylabel='dB',
                  title='weight SQNR, per-channel INT8 (higher: fits better)')
    peak_axes.set(xlabel='deployed conv', ylabel='max|w| / std',
                  title='channel peak over spread (median over channels)')
    sqnr_axes.legend(fontsize=7)
    _save(figure, path)
