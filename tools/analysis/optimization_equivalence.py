"""Which of the paper's optimization statements (sec. 3.4, Eqs. 6-10) hold, by computing.

    python tools/analysis/optimization_equivalence.py [--branches 4] [--scaling vector]
        [--lr 0.1] [--seed 0] [--out work_dirs/optimization_equivalence]

From one end-to-end kernel ``W_e`` (random, float64), one SGD step of

- (a) a single kernel with a scale, ``W_e = g W`` (Eq. 6),
- (b) ``n`` branches with one shared scale, ``W_e = g sum_i W_i`` (Eq. 7),
- (c) ``n`` branches with a scale each, ``W_e = sum_i g_i W_i`` (Eq. 9),
- (d) ``n`` branches without scales, ``W_e = sum_i W_i`` (Table 3's
  "no scaling"),

on one conv fitted to random targets. Prints the updates of ``W_e``, their
relative differences, and how much of each update no single kernel with a
scale can take, at any learning rates (the part outside ``span{G, W_e}``,
``G = dL/dW_e``). Then the verdicts: Eq. 8 ((b) updates like (a)), Eq. 10
((c) does not), and what equal branch starts (Condition 2 broken) do.
Writes ``OUT/optimization_equivalence.json`` and ``.png``.
"""
import argparse
import copy
import math
import os
import sys

import torch

# As a script the repository root is not on sys.path; the helpers sit beside.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmorepa.engine import tool_main  # noqa: E402
from mmorepa.layers.orepa_branches import scale_rows  # noqa: E402
from tools.analysis.figures import plot_equivalence  # noqa: E402
from tools.analysis.json_output import write_json  # noqa: E402
from tools.analysis.scaled_branch_updates import (LinearProblem, SharedScaleSum,  # noqa: E402
                                                  branch_spread, outside_span, plain_branch,
                                                  relative_difference, scaled_sum, sgd_step,
                                                  step_update)

SCALINGS = ('vector', 'scalar')
# Steps over which equal branches are checked to stay equal.
SYMMETRY_STEPS = 3
BATCH, SIDE = 8, 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--branches', type=int, default=4, help='branch count n (default: 4)')
    parser.add_argument('--in-channels', type=int, default=3, help='default: 3')
    parser.add_argument('--out-channels', type=int, default=4, help='default: 4')
    parser.add_argument('--kernel-size', type=int, default=3, help='odd (default: 3)')
    parser.add_argument('--scaling', default='vector', choices=SCALINGS,
                        help='one scale per output channel (vector, default) or per kernel')
    parser.add_argument('--lr', type=float, default=0.1, help='SGD learning rate (default: 0.1)')
    parser.add_argument('--seed', type=int, default=0, help='default: 0')
    parser.add_argument('--tolerance', type=float, default=1e-12,
                        help='largest relative difference called exact (default: 1e-12)')
    parser.add_argument('--out', default='work_dirs/optimization_equivalence',
                        help='folder for optimization_equivalence.json and .png')
    args = parser.parse_args(argv)
    for name in ('branches', 'in_channels', 'out_channels', 'kernel_size'):
        if getattr(args, name) <= 0:
            parser.error(f'--{name.replace("_", "-")} must be a positive int, '
                         f'got {getattr(args, name)}')
    if args.branches < 2:
        parser.error(f'--branches must be >= 2 (one branch has nothing to compare), '
                     f'got {args.branches}')
    if args.kernel_size % 2 == 0:
        parser.error(f'--kernel-size must be odd, got {args.kernel_size}')
    for name in ('lr', 'tolerance'):
        if not getattr(args, name) > 0:
            parser.error(f'--{name} must be positive, got {getattr(args, name)}')
    return args


def build_cases(args, generator):
    """Every parametrization at its start, all from one end-to-end kernel W_e.

    Args:
        args (argparse.Namespace): The tool's arguments (shape, branch count,
            scaling).
        generator (torch.Generator): Source of every random draw.

    Returns:
        tuple: ``(cases, problem)``; ``cases`` maps a name to
        ``(module, kernel_lr_factor)``.
    """
    n, scaling = args.branches, args.scaling
    shape = (args.out_channels, args.in_channels, args.kernel_size, args.kernel_size)
    fan_in = args.in_channels * args.kernel_size ** 2

    def randn(*size):
        return torch.randn(*size, generator=generator, dtype=torch.float64)

    weights = randn(n, *shape) / math.sqrt(fan_in)
    width = args.out_channels if scaling == 'vector' else 1
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
    problem = LinearProblem(randn(BATCH, args.in_channels, SIDE, SIDE),
                            randn(BATCH, args.out_channels, SIDE, SIDE))
    return cases, problem


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


def measure(cases, problem, args) -> dict:
    """Updates, their comparisons, the parts outside the span and the symmetry checks."""
    per_row = args.scaling == 'vector'
    updates = {}
    for name, (module, factor) in cases.items():
        kernel, update = step_update(module, problem, args.lr, factor)
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
        comparison['exact'] = comparison['relative_difference'] <= args.tolerance
    return dict(updates=summary, comparisons=comparisons,
                symmetry=symmetry_checks(cases, problem, args, per_row),
                start_kernel_difference=max(
                    relative_difference(u['kernel'], updates['a']['kernel'])
                    for u in updates.values()))


def symmetry_checks(cases, problem, args, per_row) -> dict:
    """Several steps from equal starts, and two from equal kernels with distinct scales."""
    equal = copy.deepcopy(cases['c, equal starts'][0])
    spreads = []
    for _ in range(SYMMETRY_STEPS):
        sgd_step(equal, problem, args.lr)
        spreads.append(branch_spread(equal))
    separating = copy.deepcopy(cases['c, equal kernels'][0])
    outside, kernel_spreads = [], []
    for _ in range(2):
        kernel = separating.kernel().detach()
        before, after = sgd_step(separating, problem, args.lr)
        outside.append(outside_span(after - before, problem.gradient(kernel), kernel, per_row))
        kernel_spreads.append(branch_spread(separating, with_scales=False))
    return dict(equal_starts_branch_spread=spreads,
                equal_kernels_outside_span_per_step=outside,
                equal_kernels_kernel_spread_per_step=kernel_spreads)


def verdicts(report: dict, args) -> list:
    """The paper's statements, each with what the numbers say."""
    tol, n = args.tolerance, args.branches
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


def print_report(report: dict, args) -> None:
    settings = report['settings']
    print(f'one SGD step (lr {args.lr}, no momentum), float64; {args.branches} branches, '
          f'{args.scaling} scales, kernel {settings["kernel_shape"]}; start kernels equal to '
          f'{report["start_kernel_difference"]:.1e} (relative)\n')
    print(f'{"parametrization":34s} {"|W_e|":>10s} {"|dW_e|":>10s} {"outside span(G,W_e)":>20s}')
    for name, row in report['updates'].items():
        print(f'{name:34s} {row["kernel_norm"]:10.4e} {row["update_norm"]:10.4e} '
              f'{row["outside_span"]:20.2e}')
    print(f'\n{"comparison of dW_e":70s} {"rel. diff.":>10s}')
    for row in report['comparisons']:
        mark = 'exact' if row['exact'] else ''
        print(f'{row["comparison"]:70s} {row["relative_difference"]:10.2e} {mark}')
    print()
    for row in report['statements']:
        print(f'- {row["statement"]}\n    verdict: {row["verdict"]}\n    {row["evidence"]}')


@tool_main
def main(argv=None):
    args = parse_args(argv)
    generator = torch.Generator().manual_seed(args.seed)
    cases, problem = build_cases(args, generator)
    report = dict(settings=dict(vars(args), dtype='float64',
                                kernel_shape=[args.out_channels, args.in_channels,
                                              args.kernel_size, args.kernel_size]))
    report.update(measure(cases, problem, args))
    report['statements'] = verdicts(report, args)
    print_report(report, args)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, 'optimization_equivalence.json')
    png_path = os.path.join(args.out, 'optimization_equivalence.png')
    write_json(json_path, report['settings'], {k: v for k, v in report.items()
                                               if k != 'settings'})
    plot_equivalence(report, png_path)
    print(f'\nwrote {json_path} and {png_path}')


if __name__ == '__main__':
    raise SystemExit(main())
