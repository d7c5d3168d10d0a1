"""A hook that writes a squeezed, stock-backbone checkpoint beside every checkpoint."""
import os
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from torch.utils.data import DataLoader

from ..configs import reparam_paths
from ..deploy import export_deploy
from ..errors import ReparamError


def first_batch_aside(loader: DataLoader):
    """The first batch of ``loader``'s dataset, drawn without touching ``loader``.

    A new iterator over the training loader itself would restart the one the
    training loop reads when its workers are persistent (and with mmseg's
    ``InfiniteSampler``, rank 0's data order would start over after every
    checkpoint). A loader of its own, in this process, draws the batch instead;
    the random states its augmentations use (Python's, numpy's, torch's) are
    restored afterwards, so training draws what it would have drawn.

    Args:
        loader (DataLoader): The training loader.
    """
    batch_size = loader.batch_size or getattr(loader.batch_sampler, 'batch_size', 1)
    aside = DataLoader(loader.dataset, batch_size=batch_size, collate_fn=loader.collate_fn,
                       num_workers=0)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            return next(iter(aside))
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


@HOOKS.register_module()
class DeployCheckpointHook(Hook):
    """Write ``<name>_deploy.pth`` next to each checkpoint the Runner saves.

    The export is made from the checkpoint file itself (see
    :func:`mmorepa.engine.export_deploy`), exactly as
    ``tools/reparameterize.py`` makes it: with ``EMAHook`` the file holds the
    averaged weights, and so does the deploy checkpoint. It holds the squeezed
    state dict under the stock model's keys (every re-param part squeezed:
    backbone, neck, heads) and the training checkpoint's ``meta``; optimizer
    state is dropped. ``deploy_config.py`` in the work dir builds the matching
    stock model; together they need no plugin. Runs after
    ``CheckpointHook`` (lowest priority), on rank 0 only, writes atomically and
    never touches the training checkpoint. At the end of training the last
    checkpoint is exported if it was not yet.

    Args:
        verify (bool): Also compare, on one training batch (drawn aside, see
            :func:`first_batch_aside`), the tensor outputs
            (:func:`~mmorepa.engine.deploy.tensor_outputs`) of the model built
            from the training checkpoint and of the stock model loaded from
            the deploy checkpoint, and log the largest relative difference.
            Default: True.
        tolerance (float): Relative difference above which verification
            logs an error. Default: 1e-4 (float32).
    """

    priority = 'LOWEST'

    def __init__(self, verify: bool = True, tolerance: float = 1e-4) -> None:
        self.verify = verify
        self.tolerance = tolerance
        self._exported: Optional[str] = None

    def before_run(self, runner) -> None:
        # Said before training, not at the first checkpoint.
        paths = reparam_paths(runner.cfg)
        if not paths:
            raise ReparamError('DeployCheckpointHook: cfg.model trains no re-param layers '
                               '(a re-param backbone, OREPABackbone, OREPAModule or a re-param '
                               'conv type anywhere in it): nothing to export')
        runner.logger.info('DeployCheckpointHook: re-param parts squeezed on export: '
                           + ', '.join(paths))

    def after_train_epoch(self, runner) -> None:
        self._export_new_checkpoint(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._export_new_checkpoint(runner)

    def after_train(self, runner) -> None:
        self._export_new_checkpoint(runner)

    def _export_new_checkpoint(self, runner) -> None:
        checkpoint = runner.message_hub.get_info('last_ckpt')
        if checkpoint is None or checkpoint == self._exported or not is_main_process():
            return
        self._exported = checkpoint
        export = export_deploy(runner.cfg, checkpoint, os.path.dirname(checkpoint),
                               runner.work_dir)
        if export is None:
            runner.logger.warning(f'{checkpoint} is already squeezed: no deploy checkpoint '
                                  'written')
            return
        runner.logger.info(f'deploy checkpoint written: {export.checkpoint}')
        if self.verify:
            model = export.trained.model
            batch = first_batch_aside(runner.train_dataloader)
            # Training-mode preprocessing pads to one size (mmseg needs it for a batch).
            data = model.data_preprocessor(batch, True)
            difference = export.difference(data['inputs'], data['data_samples'])
            message = (f'deploy model (from {os.path.basename(export.checkpoint)}) vs model '
                       f'of {os.path.basename(checkpoint)}, tensor outputs on one batch: '
                       f'max relative difference {difference:.2e}')
            if difference > self.tolerance:
                runner.logger.error(message + f' exceeds {self.tolerance:.0e}')
            else:
                runner.logger.info(message)
