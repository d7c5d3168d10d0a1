"""Training any classification config on the demo data, as the analysis tools do.

The data and the schedule are those of ``tools/demo.py`` (scikit-learn's
bundled digits at 32x32, 10 classes, a warm-up epoch then cosine, seed 0);
only the model comes from the given config. A tool adds its own recording
hooks and may change the built model before the first step.
"""
import argparse
import os
import shutil
import time
from typing import Callable, Iterable, Optional

from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmorepa.engine.cli import positive_int
from tools.demo import demo_config, write_digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_CLASSES = 10


def add_demo_training_arguments(parser: argparse.ArgumentParser, out: str,
                                when: str = '') -> None:
    """``--epochs``, ``--data-root``, ``--cfg-options`` and ``--out``: what the
    tools that train on the demo data share.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        out (str): Default output folder.
        when (str): Prefix of the help texts, e.g. ``'with --compare-scalings: '``.
    """
    parser.add_argument('--epochs', type=positive_int, default=3,
                        help=f'{when}training epochs (default: 3)')
    parser.add_argument('--data-root', help=f'{when}folder of the demo digits (default: '
                        'OUT/digits; written when missing)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in OpenMMLab tools')
    parser.add_argument('--out', default=out,
                        help='folder for the JSON and PNG files and the training runs')


def repo_path(path: str) -> str:
    """``path`` inside the repository (the shipped configs), absolute."""
    return os.path.join(ROOT, path)


def ensure_demo_digits(root: str) -> str:
    """The demo's digits under ``root`` (``train/`` and ``val/``), written once.

    Written to a temporary folder first, so an interrupted write never passes
    for a complete one on the next call.
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


def demo_training_config(config: str, data_root: str, work_dir: str, epochs: int,
                         cfg_options: Optional[dict] = None) -> Config:
    """The demo's training config with the model of ``config``.

    Args:
        config (str): A classification config (its ``model`` is taken, with a
            10-class head).
        data_root (str): Folder of :func:`ensure_demo_digits`.
        work_dir (str): Logs and the last checkpoint go here.
        epochs (int): Training epochs (positive).
        cfg_options (dict, optional): Overrides merged last, as a tool's
            ``--cfg-options`` (e.g. a narrower backbone or fewer images).

    Raises:
        ValueError: ``epochs`` is not positive.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise ValueError(f'epochs must be a positive int, got {epochs!r}')
    cfg = demo_config(data_root, work_dir, max(epochs, 2))
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
