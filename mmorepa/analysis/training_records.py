"""What an analysis records while a Runner trains: per-update loss, gradient
norm and learning rate, the mean training loss per epoch, and the validation
metrics."""
import math
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

RECORDING_OPTIM_WRAPPER = 'AnalysisRecordingOptimWrapper'


@OPTIM_WRAPPERS.register_module(name=RECORDING_OPTIM_WRAPPER, force=True)
class RecordingOptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` that records every update, changing nothing.

    Before each optimizer step it appends to :attr:`records` the loss given to
    :meth:`update_params`, the total L2 norm of all gradients (as the step
    sees them: no clipping is configured) and the learning rate of the first
    parameter group. A non-finite value is recorded as it is.

    Args:
        *args, **kwargs: Those of ``OptimWrapper``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.records: List[Dict[str, float]] = []
        self._loss = math.nan

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        self._loss = float(loss.detach())
        super().update_params(loss, step_kwargs, zero_kwargs)

    def step(self, **kwargs) -> None:
        norms = [torch.linalg.vector_norm(param.grad.detach().double())
                 for group in self.optimizer.param_groups for param in group['params']
                 if param.grad is not None]
        total = float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
        self.records.append(dict(loss=self._loss, grad_norm=total,
                                 lr=float(self.optimizer.param_groups[0]['lr'])))
        super().step(**kwargs)


def record_updates(cfg) -> None:
    """Make the optimizer wrapper of ``cfg`` a :class:`RecordingOptimWrapper`, in place.

    Args:
        cfg (Config): A training config.

    Raises:
        ValueError: ``cfg.optim_wrapper`` is another wrapper type than
            mmengine's plain ``OptimWrapper`` (AMP wrappers scale the loss).
    """
    kind = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if kind not in ('OptimWrapper', RECORDING_OPTIM_WRAPPER):
        raise ValueError(f"cfg.optim_wrapper.type must be 'OptimWrapper' to record the "
                         f'updates, got {kind!r}')
    cfg.optim_wrapper.type = RECORDING_OPTIM_WRAPPER


class ValMetricsRecorder(Hook):
    """Keeps the metrics of every validation, in order, in :attr:`metrics`."""

    def __init__(self) -> None:
        self.metrics: List[Dict[str, float]] = []

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self.metrics.append({key: float(value) for key, value in (metrics or {}).items()})


class EpochLossRecorder(Hook):
    """Keeps the mean training loss of every epoch, in order, in :attr:`losses`.

    Reads the ``loss`` the model's ``train_step`` reports after each
    iteration (a non-finite loss is kept as it is); changes nothing.
    """

    def __init__(self) -> None:
        self.losses: List[float] = []
        self._epoch: List[float] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs and 'loss' in outputs:
            self._epoch.append(float(outputs['loss']))

    def after_train_epoch(self, runner) -> None:
        self.losses.append(sum(self._epoch) / len(self._epoch) if self._epoch else math.nan)
        self._epoch = []
