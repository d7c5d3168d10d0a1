"""One training step's gradients under mixed precision against float32, OREPA
and the plain network of the same architecture side by side.

    python tools/analysis/amp_gradients.py --arch resnet50 --dtype float16 \
        --batch 16 --size 112 [--device cpu] [--json OUT.json]

Each variant (``mmorepa.benchmark`` classifiers, same seed) makes one backward
pass in float32 and one under autocast with a loss scale that starts at 2^16
and halves while a gradient overflows, as ``GradScaler`` does
(``mmorepa.benchmark.amp_check.gradient_agreement``). Prints the scale
reached, the cosine of all gradients against float32's and the least aligned
re-param layer's.
"""
import argparse
import json
import time

import torch

from mmorepa.benchmark import models
from mmorepa.benchmark.amp_check import gradient_agreement
from mmorepa.engine.cli import positive_int

DTYPES = {'float16': torch.float16, 'bfloat16': torch.bfloat16}
ARCHS = ('resnet18', 'resnet34', 'resnet50', 'resnet101')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='resnet50', choices=ARCHS)
    parser.add_argument('--variants', nargs='+', default=['plain', 'orepa'],
                        choices=models.RESNET_VARIANTS, metavar='VARIANT',
                        help=f'of {models.RESNET_VARIANTS} (default: plain orepa)')
    parser.add_argument('--dtype', default='float16', choices=sorted(DTYPES))
    parser.add_argument('--batch', type=positive_int, default=16)
    parser.add_argument('--size', type=positive_int, default=112)
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available; use --device cpu')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(args.batch, models.IN_CHANNELS, args.size, args.size,
                         generator=generator).to(device)
    labels = torch.randint(models.NUM_CLASSES, (args.batch, ), generator=generator).to(device)
    results = {}
    for variant in args.variants:
        torch.manual_seed(0)
        model = models.build(args.arch, variant).to(device)
        start = time.perf_counter()
        results[variant] = gradient_agreement(model, inputs, labels, DTYPES[args.dtype])
        results[variant]['seconds'] = time.perf_counter() - start
        row = results[variant]
        worst = '' if row['min_layer'] is None else \
            f", least aligned layer {row['min_layer']} {row['min_layer_cosine']:.5f}"
        print(f"{args.arch} {variant}, {args.dtype}: finite at loss scale {row['loss_scale']:g}, "
              f"cosine vs float32 {row['cosine']:.5f}{worst} ({row['seconds']:.0f} s)",
              flush=True)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(dict(settings=vars(args), torch=torch.__version__, results=results), file,
                      indent=2)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
