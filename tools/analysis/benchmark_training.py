"""Training cost of re-param variants: step time and peak memory (the paper's Figure 8).

    python tools/analysis/benchmark_training.py --archs resnet18 resnet50 repvgg-a0 \
        --batch 32 --size 224 --rounds 5 --out work_dirs/benchmark [--device cuda] [--amp]

Per architecture (``mmorepa.benchmark.models``): ``resnet*``: plain (the
stock ResNet), dbb, orepa, orepa-reference (the block written directly),
orepa-compiled (kernel generation through ``torch.compile``); ``repvgg-*``
likewise; ``resnet18-components``: the paper's Figure 8 rows (online, +prior,
+separable, +linear stem, +rep-1x1) with DBB, the offline counterpart of the
first; ``faster-rcnn-r50`` and ``retinanet-r50``: mmdet's R-50-FPN detectors'
training step, re-param in the backbone (orepa, dbb) or also in the neck and
head (orepa-everywhere, dbb-everywhere);
``regnetx-400mf`` (mmdet's RegNet) and ``mobilenet-v2`` (mmpretrain's): plain,
and OREPA through ``mmorepa.unsqueeze`` converting every conv kind (orepa), all
but the dense 1x1 convs (orepa-no-1x1), or the dense k x k convs only
(orepa-dense-kxk).

``--sizes 32 64 112 224`` repeats the whole run per input side (each in
``OUT/size-S/``) and draws every variant's ratios over the sizes in
``OUT/sizes.png``: the curve along which OREPA's branch placement
(``orepa``: ``auto``; ``orepa-kernel``, ``orepa-feature`` forced) moves.

Time ratios come from steps alternating in one process, per round; memory
from a fresh process per variant and memory round (on a GPU
``max_memory_allocated``, on the CPU the peak resident size, which includes
the interpreter and libraries). Ratios are quoted as median (min-max) over the
rounds. Writes ``OUT/benchmark.json`` (settings, summary, every run) and
``OUT/benchmark.png``.
"""
import argparse
import os
import platform

import torch

from mmorepa.benchmark import models
from mmorepa.benchmark.report import format_tables, plot, plot_sizes, summarize, write_json
from mmorepa.benchmark.suite import run_suite


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments; errors name the argument and what it accepts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['resnet18'], choices=sorted(models.ARCHS),
                        metavar='ARCH', help=f'of {sorted(models.ARCHS)} (default: resnet18)')
    parser.add_argument('--variants', nargs='+', metavar='VARIANT',
                        help='only these variants (the first of each arch is always measured, '
                        'as the reference of the ratios)')
    parser.add_argument('--batch', type=int, default=32, help='batch size (default: 32)')
    parser.add_argument('--size', type=int, default=224, help='input side (default: 224)')
    parser.add_argument('--sizes', type=int, nargs='+',
                        help='several input sides, one run each, and their curve (OUT/sizes.png)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='timed rounds (default: 5)')
    parser.add_argument('--memory-rounds', type=int,
                        help='fresh memory processes per variant (default: --rounds; a peak '
                        'varies far less than a step time, and each process costs a start-up)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps of each model first (default: 2; at least 1 on a '
                        'GPU)')
    parser.add_argument('--memory-steps', type=int, default=2,
                        help='steps after the warm-up in a memory process (default: 2)')
    parser.add_argument('--threads', type=int, default=available_cores(),
                        help=f'torch threads (default: all cores, {available_cores()} here)')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--amp', action='store_true',
                        help="every variant in mmengine's AMP optimizer wrapper: float16 with "
                        'loss scaling on a GPU (AmpOptimWrapper), bfloat16 on the CPU')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels_last memory format for models and inputs')
    parser.add_argument('--out', default='work_dirs/benchmark',
                        help='folder for benchmark.json and benchmark.png')
    args = parser.parse_args(argv)
    if args.memory_rounds is None:
        args.memory_rounds = args.rounds
    for name in ('batch', 'rounds', 'memory_rounds', 'threads', 'memory_steps'):
        if getattr(args, name) <= 0:
            parser.error(f'--{name.replace("_", "-")} must be a positive int, '
                         f'got {getattr(args, name)}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.device == 'cuda' and args.warmup < 1:
        parser.error(f'--warmup must be >= 1 with --device cuda (the first steps tune cuDNN '
                     f'and must stay out of the timings and the memory window), got {args.warmup}')
    option = '--sizes' if args.sizes else '--size'
    for size in args.sizes or [args.size]:
        if size < 32:
            parser.error(f'{option} must be >= 32 (the networks downsample by 32), got {size}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available; use --device cpu')
    known = {variant for arch in args.archs for variant in models.variants(arch)}
    unknown = sorted(set(args.variants or ()) - known)
    if unknown:
        parser.error(f'--variants {unknown} are not variants of {args.archs}: '
                     f'choose from {sorted(known)}')
    return args


def run(args: argparse.Namespace, size: int, out: str) -> dict:
    """One benchmark run at input side ``size``; tables printed, files in ``out``."""
    settings = dict(vars(args), size=size, torch=torch.__version__,
                    python=platform.python_version(), machine=platform.machine(),
                    processor=platform.processor(), cpu_count=os.cpu_count())
    if args.device == 'cuda':
        settings['gpu'] = torch.cuda.get_device_name()
    results = run_suite(settings, progress=lambda line: print(line, flush=True))
    summary = summarize(results)
    print('\n' + format_tables(summary, settings))
    os.makedirs(out, exist_ok=True)
    json_path = os.path.join(out, 'benchmark.json')
    png_path = os.path.join(out, 'benchmark.png')
    write_json(json_path, settings, summary, results)
    plot(summary, png_path)
    print(f'\nwrote {json_path} and {png_path}')
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.sizes:
        run(args, args.size, args.out)
        return 0
    summaries = {}
    for index, size in enumerate(args.sizes):
        print(f'input side {size} ({index + 1}/{len(args.sizes)})', flush=True)
        summaries[size] = run(args, size, os.path.join(args.out, f'size-{size}'))
    curve = os.path.join(args.out, 'sizes.png')
    plot_sizes(summaries, curve)
    print(f'wrote {curve}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
