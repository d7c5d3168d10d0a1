"""Squeeze a trained OREPA / DBB / OREPA-VGG checkpoint into a stock-model one.

    python tools/reparameterize.py CONFIG CHECKPOINT OUT_DIR [--shape H W]

Writes ``OUT_DIR/<checkpoint name>_deploy.pth`` (squeezed weights under the
stock model's keys, the checkpoint's meta, no optimizer state) and
``OUT_DIR/deploy_config.py`` (every re-param part, backbone, neck or head,
replaced by its stock part: no plugin needed), the same files
:class:`DeployCheckpointHook` writes. Then loads the written checkpoint
strictly into that stock model and prints how far its tensor outputs (a
two-stage detector's features) are from the trained model's on a random
input. Works for configs of mmpretrain, mmdet and mmseg; an already squeezed
checkpoint is left as it is.
"""
import argparse

import torch

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.engine import ReparamError, export_deploy, tool_main
from mmorepa.engine.cli import add_check_arguments, load_config, parse_checked


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config of the checkpoint')
    parser.add_argument('checkpoint', help='trained checkpoint (train form)')
    parser.add_argument('out_dir', help='folder for the deploy checkpoint and config')
    add_check_arguments(parser)
    return parse_checked(parser, argv)


@tool_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)
    print(f'squeezing {args.checkpoint} ...', flush=True)
    export = export_deploy(cfg, args.checkpoint, args.out_dir)
    if export is None:
        print(f'{args.checkpoint} is already squeezed: nothing to do')
        return
    inputs = torch.randn(1, cfg.model.backbone.get('in_channels', 3), *args.shape)
    difference = export.difference(inputs)
    print(f'deploy checkpoint: {export.checkpoint}\ndeploy config:     {export.config}\n'
          f'verification: stock model vs trained model, max relative difference '
          f'{difference:.2e} (tolerance {args.tolerance:.0e})')
    if difference > args.tolerance:
        raise ReparamError(f'verification failed: {difference:.2e} > {args.tolerance:.0e}')


if __name__ == '__main__':
    raise SystemExit(main())
