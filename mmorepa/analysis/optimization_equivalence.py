"""Which of the paper's optimization statements (sec. 3.4, Eqs. 6-10) hold, by
computing: one SGD step of each parametrization of one end-to-end kernel
(:mod:`.scaled_branch_updates`), the updates compared, and the verdicts.

From one end-to-end kernel ``W_e`` (random, float64), one SGD step of

- (a) a single kernel with a scale, ``W_e = g W`` (Eq. 6),
- (b) ``n`` branches with one shared scale, ``W_e = g sum_i W_i`` (Eq. 7),
- (c) ``n`` branches with a scale each, ``W_e = sum_i g_i W_i`` (Eq. 9),
- (d) ``n`` branches without scales, ``W_e = sum_i W_i`` (Table 3's
  "no scaling"),

on one conv fitted to random targets; how much of each update no single
kernel with a scale can take, at any learning rates (the part outside
``span{G, W_e}``, ``G = dL/dW_e``); the paper's statements with what the
numbers say about each.
"""
import copy
import math
from typing import Dict, List, Tuple

import torch
from torch import nn

from ..layers.orepa_branches import scale_rows
from .scaled_branch_updates import (LinearProblem, SharedScaleSum, branch_spread, outside_span,
                                    plain_branch, relative_difference, scaled_sum, sgd_step,
                                    step_update)

SCALINGS = ('vector', 'scalar')
# Steps over which equal branches are checked to stay equal.
SYMMETRY_STEPS = 3
BATCH, SIDE = 8, 8

# (label, update, reference): the comparisons of the report.
COMPARISONS = [
    ('Eq. 8, same learning rates: (b) vs (a)', 'b', 'a'),
    ('Eq. 8, kernel lr x n: (b) vs (a)', 'b', 'a, n x kernel lr'),
    ('(b) vs (b) with another split of the same sum', 'b', 'b, another split'),
    ('Eq. 10, same learning rates: (c) vs (a)', 'c', 'a'),
    ('Eq. 10, kernel lr x n: (c) vs (a)', 'c', 'a, n x kernel lr'),
    ('no scaling: (d) vs a plain conv with n x lr', 'd', 'plain conv, n x lr'),
    ('Condition 2 broken: equal starts (c) vs (a) with sqrt(n) g, sqrt(n) W',
     'c, equal starts', 'a, sqrt(n) g and sqrt(n) W'),
]


def build_cases(branches: int, in_channels: int, out_channels: int, kernel_size: int,
                scaling: str, generator: torch.Generator
                ) -> Tuple[Dict[str, Tuple[nn.Module, float]], LinearProblem]:
    """Every parametrization at its start, all from one end-to-end kernel W_e.

    Args:
        branches (int): Branch count ``n`` (at least 2).
        in_channels (int): Input channels of the conv.
        out_channels (int): Output channels of the conv.
        kernel_size (int): Odd kernel side.
        scaling (str): ``'vector'`` (a scale per output channel) or
            ``'scalar'`` (one per kernel).
        generator (torch.Generator): Source of every random draw.

    Returns:
        tuple: ``(cases, problem)``; ``cases`` maps a name to
        ``(module, kernel_lr_factor)``.
    """
    n = branches
    shape = (out_channels, in_channels, kernel_size, kernel_size)
    fan_in = in_channels * kernel_size ** 2

    def randn(*size):
        return torch.randn(*size, generator=generator, dtype=torch.float64)

    weights = randn(n, *shape) / math.sqrt(fan_in)
    width = out_channels if scaling == 'vector' else 1
    # Distinct, positive starts, as OREPA's (0.25, 0.5, 1.0) are.
    scales = 0.5 + torch.rand(n, width, generator=generator, dtype=torch.float64)
    kernel = sum(scale_rows(w, s) for w, s in zip(weights, scales))
    shared = scales.mean(0)
    split = randn(n - 1, *shape) / math.sqrt(fan_in)
    other_split = [*split, scale_rows(kernel, 1 / shared) - split.sum(0)]
    equal = scale_rows(kernel, 1 / (n * shared))
    total_scale = scales.sum(0)
    cases = {
        'a': (scaled_sum([scale_rows(kernel, 1 / shared)], shared[None], scaling), 1.0),
        'a, n x kernel lr': (scaled_sum([scale_rows(kernel, 1 / shared)], shared[None],
                                        scaling), float(n)),
        'b': (SharedScaleSum({f'branch{i}': plain_branch(scale_rows(w, s / shared))
                              for i, (w, s) in enumerate(zip(weights, scales))}, shared), 1.0),
        'b, another split': (SharedScaleSum({f'branch{i}': plain_branch(w)
                                             for i, w in enumerate(other_split)}, shared), 1.0),
        'c': (scaled_sum(list(weights), scales, scaling), 1.0),
        'd': (scaled_sum([scale_rows(w, s) for w, s in zip(weights, scales)], None, None), 1.0),
        'plain conv, n x lr': (scaled_sum([kernel], None, None), float(n)),
        # Condition 2 broken: equal kernels and scales, W_e = n g W.
        'c, equal starts': (scaled_sum([equal] * n, shared.expand(n, -1), scaling), 1.0),
        'a, sqrt(n) g and sqrt(n) W': (scaled_sum([math.sqrt(n) * equal],
                                                  math.sqrt(n) * shared[None], scaling), 1.0),
        # Equal kernels, distinct scales.
        'c, equal kernels': (scaled_sum([scale_rows(kernel, 1 / total_scale)] * n, scales,
                                        scaling), 1.0),
    }
    problem = LinearProblem(randn(BATCH, in_channels, SIDE, SIDE),
                            randn(BATCH, out_channels, SIDE, SIDE))
    return cases, problem


def measure(cases: dict, problem: LinearProblem, scaling: str, lr: float,
            tolerance: float) -> dict:
    """Updates, their comparisons, the parts outside the span and the symmetry checks.

    Args:
        cases (dict): The first value of :func:`build_cases`.
        problem (LinearProblem): Its second value.
        scaling (str): ``'vector'`` (spans per output channel) or ``'scalar'``.
        lr (float): SGD learning rate.
        tolerance (float): Largest relative difference called exact.

    Returns:
        dict: ``updates`` (norms and the part outside the span, by case),
        ``comparisons`` (one per :data:`COMPARISONS`), ``symmetry``
        (:func:`symmetry_checks`) and ``start_kernel_difference``.
    """
    per_row = scaling == 'vector'
    updates = {}
    for name, (module, factor) in cases.items():
        kernel, update = step_update(module, problem, lr, factor)
        updates[name] = dict(kernel=kernel, update=update,
                             gradient=problem.gradient(kernel))
    summary = {name: dict(update_norm=float(torch.linalg.vector_norm(u['update'])),
                          kernel_norm=float(torch.linalg.vector_norm(u['kernel'])),
                          outside_span=outside_span(u['update'], u['gradient'], u['kernel'],
                                                    per_row))
               for name, u in updates.items()}
    comparisons = [dict(comparison=label, update=update, reference=reference,
                        relative_difference=relative_difference(updates[update]['update'],
                                                                updates[reference]['update']))
                   for label, update, reference in COMPARISONS]
    for comparison in comparisons:
        comparison['exact'] = comparison['relative_difference'] <= tolerance
    return dict(updates=summary, comparisons=comparisons,
                symmetry=symmetry_checks(cases, problem, lr, per_row),
                start_kernel_difference=max(
                    relative_difference(u['kernel'], updates['a']['kernel'])
                    for u in updates.values()))


def symmetry_checks(cases: dict, problem: LinearProblem, lr: float, per_row: bool) -> dict:
    """Several steps from equal starts, and two from equal kernels with distinct scales.

    Args:
        cases (dict): The first value of :func:`build_cases` (not changed).
        problem (LinearProblem): Its second value.
        lr (float): SGD learning rate.
        per_row (bool): Spans per output channel (vector scales).

    Returns:
        dict: ``equal_starts_branch_spread`` (per step),
        ``equal_kernels_outside_span_per_step`` and
        ``equal_kernels_kernel_spread_per_step``.
    """
    equal = copy.deepcopy(cases['c, equal starts'][0])
    spreads = []
    for _ in range(SYMMETRY_STEPS):
        sgd_step(equal, problem, lr)
        spreads.append(branch_spread(equal))
    separating = copy.deepcopy(cases['c, equal kernels'][0])
    outside, kernel_spreads = [], []
    for _ in range(2):
        kernel = separating.kernel().detach()
        before, after = sgd_step(separating, problem, lr)
        outside.append(outside_span(after - before, problem.gradient(kernel), kernel, per_row))
        kernel_spreads.append(branch_spread(separating, with_scales=False))
    return dict(equal_starts_branch_spread=spreads,
                equal_kernels_outside_span_per_step=outside,
                equal_kernels_kernel_spread_per_step=kernel_spreads)


def verdicts(report: dict, branches: int, tolerance: float) -> List[dict]:
    """The paper's statements, each with what the numbers say.

    Args:
        report (dict): What :func:`measure` returns.
        branches (int): Branch count ``n``.
        tolerance (float): Largest relative difference called exact.

    Returns:
        list[dict]: ``statement``, ``verdict`` and ``evidence`` of each.
    """
    tol, n = tolerance, branches
    diff = {(c['update'], c['reference']): c['relative_difference']
            for c in report['comparisons']}
    span = {name: u['outside_span'] for name, u in report['updates'].items()}
    symmetry = report['symmetry']
    b_same, b_scaled = diff['b', 'a'], diff['b', 'a, n x kernel lr']
    split = diff['b', 'b, another split']
    c_same, c_scaled = diff['c', 'a'], diff['c', 'a, n x kernel lr']
    no_scaling = diff['d', 'plain conv, n x lr']
    broken = diff['c, equal starts', 'a, sqrt(n) g and sqrt(n) W']
    stays_equal = max(symmetry['equal_starts_branch_spread']) == 0.0
    step1, step2 = symmetry['equal_kernels_outside_span_per_step']
    eq8 = ('holds exactly' if b_same <= tol else
           f'up to a factor: the kernel learning rate x n = {n}' if b_scaled <= tol else
           'does not hold')
    return [
        dict(statement='Eq. 8: branches under one shared scale (b) update W_e like a single '
             'kernel with a scale (a)', verdict=eq8,
             evidence=f'(b) vs (a): {b_same:.2e}; (b) vs (a) with the kernel lr x {n}: '
             f'{b_scaled:.2e}; (b) vs another split of the same branch sum: {split:.2e} '
             f'(only the sum matters); outside span(G, W_e): (a) {span["a"]:.1e}, (b) '
             f'{span["b"]:.1e}'),
        dict(statement='Eq. 10: branch-wise scales (c) do not update W_e like (a)',
             verdict='holds exactly' if min(c_same, c_scaled) > tol and span['c'] > tol
             else 'does not hold',
             evidence=f'(c) vs (a): {c_same:.2e}, vs (a) with the kernel lr x {n}: '
             f'{c_scaled:.2e}; {span["c"]:.1%} of (c)\'s update lies outside span(G, W_e), '
             'where a single kernel with a scale moves at any learning rates'),
        dict(statement='No scaling (d): a plain sum of one-layer branches updates like one '
             'plain conv (Prop. 1, second part)',
             verdict=f'up to a factor: the learning rate x n = {n}' if no_scaling <= tol else
             'does not hold',
             evidence=f'(d) vs a plain conv with lr x {n}: {no_scaling:.2e}; outside '
             f'span(G, W_e): {span["d"]:.1e}'),
        dict(statement='Condition 2 broken: equal branch starts (equal kernels and scales) '
             'make (c) a single kernel with a scale',
             verdict='holds exactly' if broken <= tol and stays_equal else 'does not hold',
             evidence=f'(c) from equal starts vs (a) with sqrt(n) g and sqrt(n) W: '
             f'{broken:.2e}; largest difference between branches after 1..{SYMMETRY_STEPS} '
             f'steps: {symmetry["equal_starts_branch_spread"]} (they stay copies); outside '
             f'span(G, W_e): {span["c, equal starts"]:.1e}'),
        dict(statement='Equal kernels with distinct scales: one step like a single kernel, '
             'then the branches separate',
             verdict='holds' if step1 <= tol < step2 else 'does not hold',
             evidence=f'outside span(G, W_e): step 1 {step1:.1e}, step 2 {step2:.1e}; '
             f'largest kernel difference between branches after step 1: '
             f'{symmetry["equal_kernels_kernel_spread_per_step"][0]:.2e}'),
    ]


def equivalence_report(branches: int = 4, in_channels: int = 3, out_channels: int = 4,
                       kernel_size: int = 3, scaling: str = 'vector', lr: float = 0.1,
                       seed: int = 0, tolerance: float = 1e-12) -> dict:
    """The whole computation: cases from ``seed``, one step each, the verdicts.

    Args:
        branches (int): Branch count ``n`` (at least 2). Defaults to 4.
        in_channels (int): Defaults to 3.
        out_channels (int): Defaults to 4.
        kernel_size (int): Odd. Defaults to 3.
        scaling (str): ``'vector'`` or ``'scalar'``. Defaults to ``'vector'``.
        lr (float): SGD learning rate. Defaults to 0.1.
        seed (int): Seed of every random draw. Defaults to 0.
        tolerance (float): Largest relative difference called exact.
            Defaults to 1e-12.

    Returns:
        dict: :func:`measure`'s entries, then ``statements``
        (:func:`verdicts`).

    Raises:
        ValueError: An argument out of its range, named.
    """
    if branches < 2:
        raise ValueError(f'branches must be >= 2 (one branch has nothing to compare), '
                         f'got {branches}')
    if min(in_channels, out_channels, kernel_size) <= 0 or kernel_size % 2 == 0:
        raise ValueError(f'channels must be positive and kernel_size odd, got '
                         f'{in_channels}, {out_channels}, {kernel_size}')
    if scaling not in SCALINGS:
        raise ValueError(f'scaling must be one of {SCALINGS}, got {scaling!r}')
    if not (lr > 0 and tolerance > 0):
        raise ValueError(f'lr and tolerance must be positive, got {lr}, {tolerance}')
    generator = torch.Generator().manual_seed(seed)
    cases, problem = build_cases(branches, in_channels, out_channels, kernel_size, scaling,
                                 generator)
    report = measure(cases, problem, scaling, lr, tolerance)
    report['statements'] = verdicts(report, branches, tolerance)
    return report
