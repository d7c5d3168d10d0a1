"""The demo data and its training recipe: scikit-learn's bundled handwritten
digits as ImageNet-style class folders, and the shipped OREPA-ResNet-18
config pointed at them (``tools/demo.py``, and every analysis that trains).

The configs ship with the repository, not with the package: a path such as
:data:`DEMO_CONFIG` is read relative to the checkout the package is installed
from (editable), or from the working directory when the file is there.
"""
import os
import shutil

import numpy as np
from mmengine.config import Config

DEMO_CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
DEMO_CLASSES = 10
IMAGE_SIZE = 32
# The checkout holding the package: where the shipped configs are.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def repo_path(path: str) -> str:
    """``path`` inside the repository (the shipped configs), absolute.

    Args:
        path (str): A path relative to the repository root, e.g.
            :data:`DEMO_CONFIG`.

    Returns:
        str: The absolute path under the checkout that holds the package.
    """
    return os.path.join(ROOT, path)


def write_digits(root: str) -> tuple:
    """Digits as ``root/{train,val}/<digit>/<n>.png``, 32x32 RGB; 20% held out.

    The split is fixed (a permutation of seed 0), whatever the training seed.

    Args:
        root (str): Folder to write into (created).

    Returns:
        tuple[int, int]: The train and val image counts.
    """
    from PIL import Image
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


def ensure_demo_digits(root: str) -> str:
    """The demo's digits under ``root`` (``train/`` and ``val/``), written once.

    Written to a temporary folder first, so an interrupted write never passes
    for a complete one on the next call.

    Args:
        root (str): Folder of the digits.

    Returns:
        str: ``root``.
    """
    if os.path.isdir(os.path.join(root, 'val')):
        return root
    partial = root + '.partial'
    shutil.rmtree(partial, ignore_errors=True)
    train_count, val_count = write_digits(partial)
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    os.replace(partial, root)
    print(f'demo digits written: {train_count} train / {val_count} val images in {root}',
          flush=True)
    return root


def demo_config(data_root: str, work_dir: str, epochs: int, seed: int = 0,
                config: str = None) -> Config:
    """The shipped ImageNet config, pointed at the digits and shrunk to 32x32.

    Batch 64, SGD at lr 0.05, one linear warm-up epoch then cosine to the
    end, validation after the last epoch, a checkpoint every epoch.

    Args:
        data_root (str): Folder of :func:`write_digits`.
        work_dir (str): The Runner's work dir.
        epochs (int): Training epochs (at least 2: the cosine part starts
            after the first).
        seed (int): The Runner's seed (weights and data order). Defaults to 0.
        config (str, optional): The config to start from. Defaults to
            :data:`DEMO_CONFIG` in the repository.

    Returns:
        Config: The training config.
    """
    cfg = Config.fromfile(config or repo_path(DEMO_CONFIG))
    cfg.model.head.num_classes = DEMO_CLASSES
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
    cfg.randomness = dict(seed=seed, deterministic=True)
    return cfg
