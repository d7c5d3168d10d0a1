"""The main job on a built-in example: train, squeeze, deploy on the stock backbone.

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs 4]

1. Writes scikit-learn's bundled handwritten digits (1797 8x8 images, 10
   classes) as ImageNet-style class folders (train / val split).
2. Trains an OREPA-ResNet-18 on them through mmpretrain's Runner, with
   ``DeployCheckpointHook`` writing a squeezed checkpoint after every epoch.
3. Evaluates the trained (six-branch) model and the deploy config, whose
   backbone is mmpretrain's stock ``ResNet`` loaded with the squeezed weights:
   the same accuracy, and inference at the speed of the plain network.

The data and the recipe are :mod:`mmorepa.analysis.demo_data`.
"""
import argparse
import os
import time

from mmengine.config import Config
from mmengine.runner import Runner

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)
from mmorepa.analysis.demo_data import demo_config, write_digits


def timed_test(runner):
    start = time.perf_counter()
    metrics = runner.test()
    return metrics, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--epochs', type=int, default=4)
    args = parser.parse_args()
    work_dir = os.path.abspath(args.work_dir)
    data_root = os.path.join(work_dir, 'digits')

    train_count, val_count = write_digits(data_root)
    print(f'[1/3] digits written: {train_count} train / {val_count} val images in {data_root}')
    print(f"[2/3] training OREPA-ResNet-18 for {args.epochs} epochs (mmpretrain Runner)")
    runner = Runner.from_cfg(demo_config(data_root, work_dir, args.epochs))
    runner.train()
    trained, trained_seconds = timed_test(runner)
    train_params = sum(p.numel() for p in runner.model.backbone.parameters())

    print('[3/3] evaluating the deploy config: stock mmpretrain ResNet, squeezed weights')
    deploy_cfg = Config.fromfile(os.path.join(work_dir, 'deploy_config.py'))
    deploy_cfg.work_dir = os.path.join(work_dir, 'deploy')
    deploy_runner = Runner.from_cfg(deploy_cfg)
    deployed, deployed_seconds = timed_test(deploy_runner)
    deploy_params = sum(p.numel() for p in deploy_runner.model.backbone.parameters())

    key = 'accuracy/top1'
    print('\n' + '=' * 72)
    print(f'{"model":42s} {"top-1":>8s} {"params":>9s} {"test time":>10s}')
    print(f'{"OREPA-ResNet-18, train form (6 branches)":42s} {trained[key]:7.2f}% '
          f'{train_params / 1e6:8.2f}M {trained_seconds:9.2f}s')
    print(f'{"stock ResNet-18, squeezed weights":42s} {deployed[key]:7.2f}% '
          f'{deploy_params / 1e6:8.2f}M {deployed_seconds:9.2f}s')
    print('=' * 72)
    print(f'training checkpoints and logs: {work_dir}')
    print(f'deploy checkpoint:             {deploy_cfg.load_from}')
    print(f'deploy config (no plugin):     {os.path.join(work_dir, "deploy_config.py")}')
    if abs(trained[key] - deployed[key]) > 1e-6:
        raise SystemExit('error: the deployed model does not reproduce the trained accuracy')


if __name__ == '__main__':
    main()
