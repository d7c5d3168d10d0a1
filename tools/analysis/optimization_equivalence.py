"""Which of the paper's optimization statements (sec. 3.4, Eqs. 6-10) hold, by computing.

    python tools/analysis/optimization_equivalence.py [--branches 4] [--scaling vector]
        [--lr 0.1] [--seed 0] [--out work_dirs/optimization_equivalence]

One SGD step of each parametrization of one end-to-end kernel (a single
kernel with a scale, Eq. 6; branches with a shared scale, Eq. 7; branches
with a scale each, Eq. 9; branches without scales), as
:mod:`mmorepa.analysis.optimization_equivalence` describes; prints the
updates, their differences, the part no single scaled kernel can take, and
the verdicts on Eqs. 8 and 10.
Writes ``OUT/optimization_equivalence.json`` and ``.png``.
"""
import argparse
import os

from mmorepa.analysis.figures import plot_equivalence
from mmorepa.analysis.json_output import write_json
from mmorepa.analysis.optimization_equivalence import SCALINGS, equivalence_report
from mmorepa.engine import tool_main


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
    report = dict(settings=dict(vars(args), dtype='float64',
                                kernel_shape=[args.out_channels, args.in_channels,
                                              args.kernel_size, args.kernel_size]))
    report.update(equivalence_report(args.branches, args.in_channels, args.out_channels,
                                     args.kernel_size, args.scaling, args.lr, args.seed,
                                     args.tolerance))
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
