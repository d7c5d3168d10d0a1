"""One command for a machine with a GPU: the CUDA tests, float16 AMP against
float32, and the training-cost table.

    python tools/gpu_check.py [--out work_dirs/gpu_check] [--steps 50] [--rounds 5]

1. The CUDA test tier (``pytest -m cuda tests/test_cuda.py``).
2. ResNet-50 plain, OREPA and OREPA with float32 kernels: one step's
   gradients under float16 autocast (loss scale from 2^16, halved while a
   gradient overflows) against float32 (cosine); OREPA-ResNet-50's
   ``--steps`` steps of float16 AMP (mmengine's ``AmpOptimWrapper``)
   against float32 from the same start on the same batch (finite losses).
3. The training-cost table (``mmorepa.benchmark``): ResNet-18 at batch 64 and
   ResNet-50 at batch 32, 224x224: plain, OREPA, OREPA compiled and DBB, in
   float32 and in AMP.

Prints one table and writes ``OUT/gpu_check.json``. Sized for 8 minutes on
one GPU (not yet timed on one; ``--skip-tests`` and fewer ``--rounds`` cut it).
Without a GPU it says so and exits with status 2.
"""
import argparse
import json
import os
import subprocess
import sys

import torch

from mmorepa.benchmark import models
from mmorepa.benchmark.amp_check import gradient_agreement, training_losses
from mmorepa.benchmark.report import summarize
from mmorepa.benchmark.suite import run_suite
from mmorepa.engine.cli import positive_int

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COST_CASES = (('resnet18', 64), ('resnet50', 32))
COST_VARIANTS = ('plain', 'orepa', 'orepa-compiled', 'dbb')
# Kernels generated under the float16 autocast (the default) or in float32.
GRADIENT_VARIANTS = ('plain', 'orepa', 'orepa-float32-kernels')
SIZE = 224


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/gpu_check', help='folder for gpu_check.json')
    parser.add_argument('--steps', type=positive_int, default=50,
                        help='AMP and float32 training steps of OREPA-ResNet-50 (default: 50)')
    parser.add_argument('--batch', type=positive_int, default=16,
                        help='batch of the AMP check (default: 16, 224x224)')
    parser.add_argument('--rounds', type=positive_int, default=5,
                        help='timed rounds of the cost table (default: 5)')
    parser.add_argument('--skip-tests', action='store_true', help='leave out the CUDA test tier')
    return parser.parse_args(argv)


def cuda_tests() -> dict:
    command = [sys.executable, '-m', 'pytest', '-m', 'cuda', '-q', '-p', 'no:cacheprovider',
               os.path.join(ROOT, 'tests', 'test_cuda.py')]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    summary = (result.stdout.strip().splitlines() or [''])[-1]
    print(result.stdout[-3000:], result.stderr[-2000:], sep='\n', flush=True)
    return dict(returncode=result.returncode, summary=summary)


def amp_check(steps: int, batch: int) -> dict:
    def build():
        torch.manual_seed(0)
        return models.build('resnet50', 'orepa')

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, SIZE, SIZE, generator=generator).cuda()
    labels = torch.randint(models.NUM_CLASSES, (batch, ), generator=generator).cuda()
    gradients = {}
    for variant in GRADIENT_VARIANTS:
        torch.manual_seed(0)
        model = models.build('resnet50', variant).cuda().train()
        gradients[variant] = gradient_agreement(model, inputs, labels)
        print(f'ResNet-50 {variant} gradients, float16 vs float32: {gradients[variant]}',
              flush=True)
    losses = {precision: training_losses(build, inputs, labels, steps, amp=precision == 'amp')
              for precision in ('float32', 'amp')}
    finite = all(torch.isfinite(torch.tensor(run)).all().item() for run in losses.values())
    return dict(gradients=gradients, losses=losses, losses_finite=finite)


def cost_table(rounds: int) -> dict:
    tables = {}
    for amp in (False, True):
        for arch, batch in COST_CASES:
            settings = dict(archs=[arch], variants=list(COST_VARIANTS), batch=batch, size=SIZE,
                            rounds=rounds, memory_rounds=1, warmup=2, memory_steps=2,
                            threads=torch.get_num_threads(), device='cuda', amp=amp,
                            channels_last=False)
            key = f"{arch} batch {batch} {'AMP' if amp else 'float32'}"
            print(f'training cost: {key}', flush=True)
            tables[key] = summarize(run_suite(settings, progress=lambda line: print(
                line, flush=True)))[arch]['train']
    return tables


def format_report(report: dict) -> str:
    lines = [f"GPU check on {report['gpu']} (torch {report['torch']})"]
    if 'tests' in report:
        lines.append(f"CUDA tests: {report['tests']['summary']}")
    for variant, gradients in report['amp']['gradients'].items():
        worst = '' if gradients['min_layer'] is None else \
            f" (least aligned layer {gradients['min_layer']}: {gradients['min_layer_cosine']:.5f})"
        lines.append(f"ResNet-50 {variant} float16 gradients: finite at loss scale "
                     f"{gradients['loss_scale']:g}, cosine vs float32 "
                     f"{gradients['cosine']:.5f}{worst}")
    losses = report['amp']['losses']
    lines.append(f"{len(losses['amp'])} steps: losses finite {report['amp']['losses_finite']}, "
                 f"final loss float32 {losses['float32'][-1]:.4f}, AMP {losses['amp'][-1]:.4f}")
    lines.append(f"{'case':<28} {'variant':<16} {'step':>9} {'time ratio':>22} "
                 f"{'peak memory':>12} {'memory ratio':>12}")
    for case, rows in report['cost'].items():
        for variant, row in rows.items():
            time = row['time_ratio']
            lines.append(f"{case:<28} {variant:<16} {row['step_s'] * 1000:>7.1f}ms "
                         f"{time['median']:>9.2f}x ({time['min']:.2f}-{time['max']:.2f}) "
                         f"{row['peak_memory_mb']:>10.0f}MB "
                         f"{row['memory_ratio']['median']:>11.2f}x")
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print('gpu_check: no CUDA device is available (torch.cuda.is_available() is False); '
              'run it on a machine with a GPU', file=sys.stderr)
        return 2
    report = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__)
    if not args.skip_tests:
        report['tests'] = cuda_tests()
    report['amp'] = amp_check(args.steps, args.batch)
    report['cost'] = cost_table(args.rounds)
    print('\n' + format_report(report))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'gpu_check.json')
    with open(path, 'w') as file:
        json.dump(report, file, indent=2)
    print(f'wrote {path}')
    finite = all(run['loss_scale'] > 0 for run in report['amp']['gradients'].values())
    failed = report.get('tests', {}).get('returncode', 0) != 0 or not (
        finite and report['amp']['losses_finite'])
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
