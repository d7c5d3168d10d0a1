"""Training any classification config on the demo data, as the analyses do.

The data and the schedule are those of the demo (:mod:`.demo_data`:
scikit-learn's bundled digits at 32x32, 10 classes, a warm-up epoch then
cosine, seed 0 unless told); only the model comes from the given config. An
analysis adds its own recording hooks and may change the built model before
the first step.
"""
import os
import time
from typing import Callable, Iterable, Optional

from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from .demo_data import DEMO_CLASSES, demo_config


def demo_training_config(config: str, data_root: str, work_dir: str, epochs: int,
                         cfg_options: Optional[dict] = None, seed: int = 0) -> Config:
    """The demo's training config with the model of ``config``.

    Args:
        config (str): A classification config (its ``model`` is taken, with a
            10-class head).
        data_root (str): Folder of :func:`.demo_data.ensure_demo_digits`.
        work_dir (str): Logs and the last checkpoint go here.
        epochs (int): Training epochs (positive).
        cfg_options (dict, optional): Overrides merged last, as a tool's
            ``--cfg-options`` (e.g. a narrower backbone or fewer images).
        seed (int): The Runner's seed: initial weights, data order and
            augmentation. Defaults to 0.

    Returns:
        Config: The training config.

    Raises:
        ValueError: ``epochs`` is not positive.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f'epochs must be a positive int, got {epochs!r}')
    cfg = demo_config(data_root, work_dir, max(epochs, 2), seed)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs)
    if epochs == 1:  # the cosine part of the demo's schedule needs a second epoch
        cfg.param_scheduler = cfg.param_scheduler[:1]
    model = Config.fromfile(config).model
    model.head.num_classes = DEMO_CLASSES
    model.head.topk = (1, )
    cfg.model = model
    # The analyses need no deploy export next to every checkpoint.
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if hook.get('type') != 'DeployCheckpointHook']
    # One logger and message hub per run: two runs in one second would share them.
    run_name = os.path.basename(os.path.normpath(work_dir))
    cfg.experiment_name = f'{run_name}_{time.strftime("%Y%m%d_%H%M%S")}_{os.getpid()}'
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def train_on_demo(cfg: Config, hooks: Iterable[Hook] = (),
                  prepare: Optional[Callable[[Runner], None]] = None) -> Runner:
    """Build the Runner of ``cfg``, register ``hooks``, call ``prepare(runner)``
    (the model is built and seeded, no weight is trained yet), train, validate.

    Args:
        cfg (Config): A training config (:func:`demo_training_config`).
        hooks (Iterable[Hook]): Registered at priority ``'LOW'``.
        prepare (Callable, optional): Called with the Runner before training.

    Returns:
        Runner: The trained runner (``runner.model``, ``runner.optim_wrapper``).
    """
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook, priority='LOW')
    if prepare is not None:
        prepare(runner)
    runner.train()
    return runner
