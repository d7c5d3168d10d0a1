"""Parameters of every backbone in train form and after squeezing.

    python tools/analysis/count_params.py [--classes 1000]

Counts include a 1000-class linear head (as the paper's tables do). The
deployed count is measured on the squeezed model, and checked equal to the
stock network of the same architecture.
"""
import argparse

import torch
from mmpretrain.models.backbones import RepVGG, ResNet, ResNeXt

from mmorepa import OREPARepVGG, OREPAResNet, reparameterize

NETWORKS = {
    'ResNet-18': (dict(depth=18), 512, lambda: ResNet(18)),
    'ResNet-34': (dict(depth=34), 512, lambda: ResNet(34)),
    'ResNet-50': (dict(depth=50), 2048, lambda: ResNet(50)),
    'ResNet-101': (dict(depth=101), 2048, lambda: ResNet(101)),
    'ResNet-152': (dict(depth=152), 2048, lambda: ResNet(152)),
    'ResNeXt-50 32x4d': (dict(depth=50, groups=32, width_per_group=4), 2048,
                         lambda: ResNeXt(50, groups=32, width_per_group=4)),
    'WRN-18-2x': (dict(depth=18, stem_channels=128, base_channels=128), 1024,
                  lambda: ResNet(18, stem_channels=128, base_channels=128)),
}
VGG_NETWORKS = {'RepVGG-A0': 'A0', 'RepVGG-A1': 'A1', 'RepVGG-A2': 'A2'}


def millions(module):
    return sum(p.numel() for p in module.parameters()) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--classes', type=int, default=1000, help='head classes (1000)')
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print(f'{"network":18s} {"mode":9s} {"train form":>11s} {"deployed":>9s}  (M params, '
          f'incl. a {args.classes}-class head)')
    for name, (kwargs, width, stock) in NETWORKS.items():
        head = (width + 1) * args.classes / 1e6
        stock_count = millions(stock()) + head
        for mode in ('orepa', 'dbb', None):
            backbone = OREPAResNet(**kwargs, reparam=mode).eval()
            deployed = millions(reparameterize(backbone)) + head
            if abs(deployed - stock_count) > 1e-9:
                raise SystemExit(f'{name} {mode}: deployed {deployed} != stock {stock_count}')
            print(f'{name:18s} {str(mode):9s} {millions(backbone) + head:11.2f} '
                  f'{deployed:9.2f}', flush=True)
    for name, arch in VGG_NETWORKS.items():
        stock = RepVGG(arch, deploy=True)
        head = (stock.stage_4[-1].out_channels + 1) * args.classes / 1e6
        for mode in ('orepa', 'repvgg'):
            backbone = OREPARepVGG(arch, reparam=mode).eval()
            deployed = millions(reparameterize(backbone)) + head
            if abs(deployed - millions(stock) - head) > 1e-9:
                raise SystemExit(f'{name} {mode}: deployed differs from the stock RepVGG')
            print(f'{name:18s} {mode:9s} {millions(backbone) + head:11.2f} {deployed:9.2f}',
                  flush=True)


if __name__ == '__main__':
    main()
