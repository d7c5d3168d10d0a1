"""The main job on a built-in example: train, squeeze, deploy on the stock backbone.

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs 4]

1. Writes scikit-learn's bundled handwritten digits (1797 8x8 images, 10
   classes) as ImageNet-style class folders (train / val split).
2. Trains an OREPA-ResNet-18 on them through mmpretrain's Runner, with
   ``DeployCheckpointHook`` writing a squeezed checkpoint after every epoch.
3. Evaluates the trained (six-branch) model and the deploy config, whose
   backbone is mmpretrain's stock ``ResNet`` loaded with the squeezed weights:
   the same accuracy, and inference at the speed of the plain network.
"""
import argparse
import os
import time

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

import mmorepa  # noqa: F401  (registers the plugin, allows OpenMMLab checkpoints)

CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
IMAGE_SIZE = 32


def write_digits(root):
    """Digits as ``root/{train,val}/<digit>/<n>.png``, 32x32 RGB; 20% held out."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    held_out = set(order[:len(order) // 5].tolist())
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        split = 'val' if index in held_out else 'train'
        folder = os.path.join(root, split, str(label))
        os.makedirs(folder, exist_ok=True)
        pixels = (image / 16 * 255).astype(np.uint8)
        picture = Image.fromarray(pixels).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        picture.convert('RGB').save(os.path.join(folder, f'{index}.png'))
    return len(order) - len(held_out), len(held_out)


def demo_config(data_root, work_dir, epochs):
    """The shipped ImageNet config, pointed at the digits and shrunk to 32x32."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.head.num_classes = 10
    cfg.model.head.topk = (1, )
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='RandomResizedCrop', scale=IMAGE_SIZE, crop_ratio_range=(0.8, 1.0)),
        dict(type='PackInputs'),
    ]
    test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    for split, steps, shuffle in (('train', pipeline, True), ('val', test_pipeline, False),
                                  ('test', test_pipeline, False)):
        cfg[f'{split}_dataloader'] = dict(
            batch_size=64, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            dataset=dict(type='CustomDataset', data_root=data_root,
                         data_prefix='train' if split == 'train' else 'val', pipeline=steps))
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs)
    # The paper's schedule, compressed: one warm-up epoch, cosine to the end.
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
             convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs,
             convert_to_iter_based=True),
    ]
    cfg.optim_wrapper.optimizer.lr = 0.05
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=5)
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0, deterministic=True)
    return cfg


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
