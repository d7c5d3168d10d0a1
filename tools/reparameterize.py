"""Squeeze a trained OREPA / DBB / OREPA-VGG checkpoint into a stock-backbone one.

    python tools/reparameterize.py CONFIG CHECKPOINT OUT_DIR

Writes ``OUT_DIR/<checkpoint name>_deploy.pth`` (squeezed weights under the
stock backbone's keys, the checkpoint's meta, no optimizer state) and
``OUT_DIR/deploy_config.py`` (the stock backbone: no plugin needed), then
builds that stock model, loads the written checkpoint strictly and prints how
far its backbone outputs are from the trained model's on a random input.
Works for configs of mmpretrain, mmdet and mmseg.
"""
import argparse
import os
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import load_checkpoint, load_state_dict

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.engine import (CheckpointError, build_model, deploy_config, export_deploy,
                            read_checkpoint, verify_deploy_model)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config of the checkpoint')
    parser.add_argument('checkpoint', help='trained checkpoint (train form)')
    parser.add_argument('out_dir', help='folder for the deploy checkpoint and config')
    parser.add_argument('--input-size', type=int, default=224,
                        help='side of the random verification input (default: 224)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='max relative difference accepted (default: 1e-4)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    deploy_cfg = deploy_config(cfg)
    try:
        checkpoint = read_checkpoint(args.checkpoint)
    except CheckpointError as error:
        raise SystemExit(f'error: {error}')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if checkpoint.get('meta', {}).get('mmorepa', {}).get('squeezed'):
        print(f'{args.checkpoint} is already squeezed: nothing to do')
        return 0
    cfg.model.backbone.pop('init_cfg', None)
    model = build_model(cfg)
    deploy_model = build_model(deploy_cfg)
    if set(state_dict) == set(deploy_model.state_dict()):
        print(f'{args.checkpoint} already has the stock keys (squeezed): nothing to do')
        return 0
    try:
        load_state_dict(model, state_dict, strict=True, logger='silent')
    except RuntimeError as error:
        raise SystemExit(f'error: {args.checkpoint} does not fit the model of {args.config} '
                         f'(wrong architecture?):\n{error}')
    print(f'squeezing {args.checkpoint} ...')
    meta = dict(checkpoint.get('meta', {}), source_checkpoint=os.path.abspath(args.checkpoint))
    try:
        target, config_path = export_deploy(model, deploy_cfg, args.checkpoint, args.out_dir,
                                            args.out_dir, meta)
    except CheckpointError as error:
        raise SystemExit(f'error: {error}')
    load_checkpoint(deploy_model, target, map_location='cpu', strict=True, logger='silent')
    inputs = torch.randn(1, cfg.model.backbone.get('in_channels', 3), args.input_size,
                         args.input_size)
    difference = verify_deploy_model(model, deploy_model, inputs)
    print(f'deploy checkpoint: {target}\ndeploy config:     {config_path}\n'
          f'verification: stock backbone vs trained backbone, max relative difference '
          f'{difference:.2e} (tolerance {args.tolerance:.0e})')
    if difference > args.tolerance:
        print('error: verification failed', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
