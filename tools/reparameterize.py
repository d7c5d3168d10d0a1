"""Squeeze a trained OREPA / DBB / OREPA-VGG checkpoint into a stock-backbone one.

    python tools/reparameterize.py CONFIG CHECKPOINT OUT_DIR [--shape H W]

Writes ``OUT_DIR/<checkpoint name>_deploy.pth`` (squeezed weights under the
stock backbone's keys, the checkpoint's meta, no optimizer state) and
``OUT_DIR/deploy_config.py`` (the stock backbone: no plugin needed), the same
files :class:`DeployCheckpointHook` writes. Then loads the written checkpoint
strictly into that stock model and prints how far its backbone outputs are
from the trained model's on a random input. Works for configs of mmpretrain,
mmdet and mmseg; an already squeezed checkpoint is left as it is.
"""
import argparse

import torch
from mmengine.config import Config, DictAction

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.engine import ReparamError, export_deploy, tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config of the checkpoint')
    parser.add_argument('checkpoint', help='trained checkpoint (train form)')
    parser.add_argument('out_dir', help='folder for the deploy checkpoint and config')
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='height and width of the random verification input '
                        '(default: 224 224)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max relative difference accepted (default: 1e-4)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')
    args = parser.parse_args(argv)
    if min(args.shape) <= 0:
        parser.error(f'--shape must be two positive ints H W, got {args.shape}')
    return args


@tool_main
def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    print(f'squeezing {args.checkpoint} ...', flush=True)
    export = export_deploy(cfg, args.checkpoint, args.out_dir)
    if export is None:
        print(f'{args.checkpoint} is already squeezed: nothing to do')
        return
    inputs = torch.randn(1, cfg.model.backbone.get('in_channels', 3), *args.shape)
    difference = export.difference(inputs)
    print(f'deploy checkpoint: {export.checkpoint}\ndeploy config:     {export.config}\n'
          f'verification: stock backbone vs trained backbone, max relative difference '
          f'{difference:.2e} (tolerance {args.tolerance:.0e})')
    if difference > args.tolerance:
        raise ReparamError(f'verification failed: {difference:.2e} > {args.tolerance:.0e}')


if __name__ == '__main__':
    raise SystemExit(main())
