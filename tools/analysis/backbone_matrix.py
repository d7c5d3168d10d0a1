"""OREPA in every backbone, neck and head: builds, starts from the stock
checkpoint, squeezes back.

    python tools/analysis/backbone_matrix.py [--only NAME ...] [--necks-heads] \
        [--size H W] [--float64]

For each backbone of mmpretrain, mmdet and mmseg (and timm / torchvision
models), or with ``--necks-heads`` each neck and head of mmdet and mmseg, the
OREPA version is built the way a user builds it (a re-param ``conv_cfg``, the
``OREPABackbone`` / ``OREPAModule`` wrapper, or ``mmorepa.unsqueeze``),
started from a stock checkpoint with random weights and BatchNorm statistics,
and squeezed into the stock module of the deploy config (loaded with
``strict=True``); see :mod:`mmorepa.engine.backbone_check`. Prints one
markdown row per module.
"""
import argparse
import time

import torch

import mmorepa  # noqa: F401  (registers the plugin)
from mmorepa.engine.backbone_check import check_backbone, check_model

# name -> (library, route, stock backbone config, or a builder for 'unsqueeze')
BACKBONES = {
    'RegNetX-400MF': ('mmdet', 'conv_cfg', dict(type='RegNet', arch='regnetx_400mf')),
    'ResNeSt-50': ('mmdet', 'conv_cfg', dict(type='ResNeSt', depth=50)),
    'Res2Net-50': ('mmdet', 'conv_cfg', dict(type='Res2Net', depth=50)),
    'ResNeXt-50 32x4d': ('mmdet', 'conv_cfg', dict(type='ResNeXt', depth=50, groups=32,
                                                   base_width=4)),
    'HRNet-W18': ('mmdet', 'conv_cfg', dict(type='HRNet', extra=dict(
        stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ),
                    num_channels=(64, )),
        stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4),
                    num_channels=(18, 36)),
        stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                    num_channels=(18, 36, 72)),
        stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                    num_channels=(18, 36, 72, 144))))),
    'MobileNetV2 (mmdet)': ('mmdet', 'conv_cfg', dict(type='MobileNetV2')),
    'CSPDarknet P5 (YOLOX-S)': ('mmdet', 'conv_cfg', dict(type='CSPDarknet', deepen_factor=0.33,
                                                          widen_factor=0.5)),
    'MobileNetV2 (mmseg)': ('mmseg', 'conv_cfg', dict(type='MobileNetV2')),
    'ResNetV1c-50 (mmseg)': ('mmseg', 'conv_cfg', dict(type='ResNetV1c', depth=50)),
    'MobileNetV3-Small (mmseg)': ('mmseg', 'conv_cfg', dict(type='MobileNetV3', arch='small')),
    'MobileNetV2': ('mmpretrain', 'conv_cfg', dict(type='MobileNetV2')),
    'MobileNetV3-Small': ('mmpretrain', 'conv_cfg', dict(type='MobileNetV3', arch='small')),
    'RegNetX-400MF (mmpretrain)': ('mmpretrain', 'conv_cfg', dict(type='RegNet',
                                                                  arch='regnetx_400mf')),
    'SE-ResNet-50': ('mmpretrain', 'conv_cfg', dict(type='SEResNet', depth=50)),
    'EfficientNet-B0': ('mmpretrain', 'conv_cfg', dict(type='EfficientNet', arch='b0')),
    'ConvNeXt-Atto': ('mmpretrain', 'wrapper', dict(type='ConvNeXt', arch='atto')),
    'timm ResNet-18 (TIMMBackbone)': ('mmpretrain', 'wrapper', dict(type='TIMMBackbone',
                                                                    model_name='resnet18')),
    'torchvision ResNet-18': ('torchvision', 'unsqueeze', lambda: _torchvision('resnet18')),
    'torchvision MobileNetV3-Small': ('torchvision', 'unsqueeze',
                                      lambda: _torchvision('mobilenet_v3_small')),
    'timm TF-EfficientNet-B0 (same padding)': ('timm', 'unsqueeze',
                                               lambda: _timm('tf_efficientnet_b0')),
}


BN = dict(type='BN')
# name -> (library, route, stock config, channels of the feature maps it takes)
NECKS_HEADS = {
    'FPN (RetinaNet, P3-P7)': ('mmdet', 'conv_cfg', dict(
        type='FPN', in_channels=[16, 32, 64, 128], out_channels=32, start_level=1,
        add_extra_convs='on_input', num_outs=5), [16, 32, 64, 128]),
    'PAFPN': ('mmdet', 'conv_cfg', dict(type='PAFPN', in_channels=[16, 32, 64, 128],
                                        out_channels=32, num_outs=5), [16, 32, 64, 128]),
    'YOLOXPAFPN': ('mmdet', 'conv_cfg', dict(type='YOLOXPAFPN', in_channels=[32, 64, 128],
                                             out_channels=32, num_csp_blocks=1), [32, 64, 128]),
    'ChannelMapper (3x3)': ('mmdet', 'conv_cfg', dict(
        type='ChannelMapper', in_channels=[16, 32], out_channels=32, kernel_size=3,
        norm_cfg=dict(type='GN', num_groups=8)), [16, 32]),
    'RetinaHead': ('mmdet', 'conv_cfg', dict(type='RetinaHead', num_classes=3, in_channels=32,
                                             feat_channels=32, stacked_convs=2), [32] * 5),
    'FCOSHead (GN)': ('mmdet', 'conv_cfg', dict(type='FCOSHead', num_classes=3, in_channels=32,
                                                feat_channels=32, stacked_convs=2), [32] * 5),
    'ATSSHead (GN)': ('mmdet', 'conv_cfg', dict(type='ATSSHead', num_classes=3, in_channels=32,
                                                feat_channels=32, stacked_convs=2), [32] * 5),
    'YOLOXHead': ('mmdet', 'conv_cfg', dict(type='YOLOXHead', num_classes=3, in_channels=32,
                                            feat_channels=32, stacked_convs=2), [32] * 3),
    'RPNHead (plain nn.Conv2d)': ('mmdet', 'module', dict(type='RPNHead', in_channels=32,
                                                          feat_channels=32), [32] * 5),
    'FCNHead (mmseg)': ('mmseg', 'conv_cfg', dict(
        type='FCNHead', in_channels=64, channels=16, in_index=2, num_convs=2, num_classes=4,
        norm_cfg=BN), [16, 32, 64, 128]),
    'PSPHead (mmseg)': ('mmseg', 'conv_cfg', dict(
        type='PSPHead', in_channels=128, channels=16, in_index=3, num_classes=4,
        norm_cfg=BN), [16, 32, 64, 128]),
    'ASPPHead (mmseg)': ('mmseg', 'conv_cfg', dict(
        type='ASPPHead', in_channels=128, channels=16, in_index=3, dilations=(1, 2, 3, 4),
        num_classes=4, norm_cfg=BN), [16, 32, 64, 128]),
    'DepthwiseSeparableASPPHead (mmseg, DeepLabV3+)': ('mmseg', 'module', dict(
        type='DepthwiseSeparableASPPHead', in_channels=128, channels=16, in_index=3,
        dilations=(1, 2, 3, 4), c1_in_channels=16, c1_channels=8, num_classes=4,
        norm_cfg=BN), [16, 32, 64, 128]),
    'UPerHead (mmseg)': ('mmseg', 'conv_cfg', dict(
        type='UPerHead', in_channels=[16, 32, 64, 128], in_index=[0, 1, 2, 3], channels=16,
        num_classes=4, norm_cfg=BN), [16, 32, 64, 128]),
}


def _torchvision(name):
    import torchvision
    return getattr(torchvision.models, name)()


def _timm(name):
    import timm
    return timm.create_model(name, pretrained=False)


def check(name: str, size, dtype):
    """Run the check of one entry of :data:`BACKBONES` or :data:`NECKS_HEADS`."""
    if name in NECKS_HEADS:
        library, route, stock, channels = NECKS_HEADS[name]
        return check_backbone(stock, route, library, size, dtype, channels=channels)
    library, route, stock = BACKBONES[name]
    if route == 'unsqueeze':
        return check_model(stock, size, dtype)
    return check_backbone(stock, route, library, size, dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', nargs='+', choices=sorted({**BACKBONES, **NECKS_HEADS}),
                        metavar='NAME', help=f'check only these (default: all {len(BACKBONES)} '
                        'backbones, or all necks and heads)')
    parser.add_argument('--necks-heads', action='store_true',
                        help=f'the {len(NECKS_HEADS)} necks and heads instead of the backbones')
    parser.add_argument('--size', type=int, nargs=2, default=(64, 64), metavar=('H', 'W'),
                        help='input height and width (default: 64 64)')
    parser.add_argument('--float64', action='store_true',
                        help='check in float64 instead of float32')
    args = parser.parse_args(argv)
    dtype = torch.float64 if args.float64 else torch.float32
    names = args.only or list(NECKS_HEADS if args.necks_heads else BACKBONES)
    rows = []
    for index, name in enumerate(names, 1):
        started = time.time()
        print(f'[{index}/{len(names)}] {name} ...', flush=True)
        result = check(name, args.size, dtype)
        library, route = (NECKS_HEADS.get(name) or BACKBONES[name])[:2]
        rows.append(f'| {name} | {library} | {route} | {result.converted} / {result.convs} | '
                    f'{result.squeeze_error:.1e} | {result.start_error:.1e} |')
        print(f'    {time.time() - started:.0f} s: {rows[-1]}', flush=True)
    print(f'\n{str(dtype)[6:]}, input 2 x 3 x {args.size[0]} x {args.size[1]}, '
          f'torch {torch.__version__}\n')
    print(f'| {"neck / head" if args.necks_heads else "backbone"} | library | route | '
          'OREPA layers / convs | squeezed vs OREPA '
          '(strict load) | OREPA start vs stock |')
    print('|---|---|---|---|---|---|')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
