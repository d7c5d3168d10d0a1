"""A hook that writes a squeezed, stock-backbone checkpoint beside every checkpoint."""
import os
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..deploy import build_model, deploy_config, export_deploy, verify_deploy_model


@HOOKS.register_module()
class DeployCheckpointHook(Hook):
    """Write ``<name>_deploy.pth`` next to each checkpoint the Runner saves.

    The deploy checkpoint holds the squeezed state dict under the stock
    backbone's keys and the training checkpoint's ``meta``; optimizer state
    is dropped. ``deploy_config.py`` in the work dir builds the matching stock
    model (see :func:`mmorepa.engine.deploy_config`); together they need no
    plugin. Runs after ``CheckpointHook`` (lowest priority), on rank 0 only,
    writes atomically and never touches the training checkpoint. At the end
    of training the last checkpoint is exported if it was not yet.

    Args:
        verify (bool): Also build the deploy model, load the written
            checkpoint strictly, and log the largest relative difference of
            the backbone outputs on one training batch. Default: True.
        tolerance (float): Relative difference above which verification
            logs an error. Default: 1e-4 (float32).
    """

    priority = 'LOWEST'

    def __init__(self, verify: bool = True, tolerance: float = 1e-4) -> None:
        self.verify = verify
        self.tolerance = tolerance
        self._exported: Optional[str] = None

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
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        meta = dict(epoch=runner.epoch, iter=runner.iter, source_checkpoint=checkpoint)
        cfg = deploy_config(runner.cfg)
        target, _ = export_deploy(model, cfg, checkpoint, os.path.dirname(checkpoint),
                                  runner.work_dir, meta)
        runner.logger.info(f'deploy checkpoint written: {target}')
        if self.verify:
            self._verify(runner, model, cfg, target)

    def _verify(self, runner, model, cfg, target) -> None:
        from mmengine.runner import load_checkpoint
        deploy_model = build_model(cfg).to(next(model.parameters()).device)
        load_checkpoint(deploy_model, target, map_location='cpu', strict=True,
                        logger='silent')
        batch = next(iter(runner.train_dataloader))
        # Training-mode preprocessing pads to one size (mmseg needs it for a batch).
        inputs = model.data_preprocessor(batch, True)['inputs']
        difference = verify_deploy_model(model, deploy_model, inputs)
        message = (f'deploy model vs trained model, backbone outputs on one batch: '
                   f'max relative difference {difference:.2e}')
        if difference > self.tolerance:
            runner.logger.error(message + f' exceeds {self.tolerance:.0e}')
        else:
            runner.logger.info(message)
