"""DeployCheckpointHook leaves the training data alone.

Its verification batch is drawn aside: with persistent workers and an
infinite sampler (mmseg's iteration-based schedules), a new iterator over the
training loader would restart the one training reads, so the data order
would start over after every checkpoint.
"""
import os

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import tiny_runs

CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
ITERS, CHECKPOINT_EVERY = 4, 2


class RecordImagePathsHook(Hook):
    """Keeps the images of every training batch (paths in the data root), in order."""

    def __init__(self) -> None:
        self.batches = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        root = runner.cfg.train_dataloader.dataset.data_root
        self.batches.append([os.path.relpath(sample.img_path, root)
                             for sample in data_batch['data_samples']])


def training_order(root, with_export_hook: bool):
    cfg = tiny_runs.classification(CONFIG, str(root / 'data'), str(root / 'work'))
    loader = cfg.train_dataloader
    loader.update(num_workers=1, persistent_workers=True,
                  sampler=dict(type='InfiniteSampler', shuffle=True))
    cfg.train_cfg = dict(by_epoch=False, max_iters=ITERS, val_interval=ITERS)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=CHECKPOINT_EVERY,
                                        by_epoch=False)
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook['type'] != 'DeployCheckpointHook' or with_export_hook]
    assert any(hook['type'] == 'DeployCheckpointHook'
               for hook in cfg.custom_hooks) == with_export_hook
    config = str(root / 'tiny.py')
    cfg.dump(config)  # loading the file runs its custom_imports, as tools/train.py does
    runner = Runner.from_cfg(Config.fromfile(config))
    recorder = RecordImagePathsHook()
    runner.register_hook(recorder)
    runner.train()
    return recorder.batches


@pytest.mark.slow
def test_export_hook_keeps_the_training_data_order(tmp_path):
    without = training_order(tmp_path / 'without', with_export_hook=False)
    with_hook = training_order(tmp_path / 'with', with_export_hook=True)
    assert len(without) == ITERS
    # The hook exported after iteration 2; training went on with batch 3, not batch 1.
    assert with_hook == without
