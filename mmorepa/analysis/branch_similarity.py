"""Branch cosines of a checkpoint, of every checkpoint of a run, and during a
training on the demo data (the paper's Fig. 7; :mod:`.branch_cosines` holds
the measure).
"""
import math
import os
import re
from collections import OrderedDict
from typing import Callable, List, Optional, Tuple

from mmengine.config import Config
from mmengine.hooks import Hook

from ..engine import TRAIN_FORM, ReparamError, load_trained_model
from .branch_cosines import (layer_contributions, mean_off_diagonal_abs, mean_over_layers,
                             model_similarities, moved_similarities)
from .demo_data import repo_path
from .demo_training import demo_training_config, train_on_demo
from .seeds import spread
from .training_records import ValMetricsRecorder

# Table 3's scaling rows on OREPA-ResNet-18, relative to the repository.
SCALING_CONFIGS = OrderedDict([
    ('vector', 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'),
    ('scalar', 'configs/imagenet/ablations/orepa-resnet18_scalar-scaling_8xb32-120e_in1k.py'),
    ('none', 'configs/imagenet/ablations/orepa-resnet18_no-scaling_8xb32-120e_in1k.py'),
])
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
TOP1 = 'accuracy/top1'


def _print(line: str) -> None:
    print(line, flush=True)


def similarity_record(layers: dict) -> dict:
    """Cosines of every layer, their means, and one summary number (tensors; the
    ``_tensors`` entry is for the pictures, not for the JSON).

    Args:
        layers (dict): Layer name -> ``(branch names, cosine matrix)``.

    Returns:
        dict: ``layers``, ``means``, ``branches`` (the branch set most layers
        share), ``mean_cosine`` (its mean matrix), ``mean_off_diagonal_abs``
        and ``_tensors`` (``(layers, means)`` for the heat maps).
    """
    means = mean_over_layers(layers)
    # The branch set most layers share (all of them in OREPA-ResNet-18).
    branches, main = max(means.items(), key=lambda item: item[1]['layers'])
    per_layer = {name: mean_off_diagonal_abs(matrix) for name, (_, matrix) in layers.items()}
    finite = [value for value in per_layer.values() if not math.isnan(value)]
    return dict(
        layers=OrderedDict((name, dict(branches=list(names), cosine=matrix,
                                       mean_abs_cosine=per_layer[name]))
                           for name, (names, matrix) in layers.items()),
        means=[dict(branches=list(names), layers=mean['layers'], cosine=mean['cosine'])
               for names, mean in means.items()],
        branches=list(branches), mean_cosine=main['cosine'],
        mean_off_diagonal_abs=sum(finite) / len(finite) if finite else float('nan'),
        _tensors=(layers, means))


def public_record(record: dict) -> dict:
    """``record`` without its private (``_``-prefixed) entries: what the JSON keeps.

    Args:
        record (dict): A :func:`similarity_record` (or any dict).

    Returns:
        dict: A shallow copy without the keys starting with ``_``.
    """
    return {key: value for key, value in record.items() if not key.startswith('_')}


def run_checkpoints(work_dir: str) -> List[Tuple[str, int, str]]:
    """``(unit, step, path)`` of every ``epoch_N.pth`` / ``iter_N.pth``, in order.

    Args:
        work_dir (str): A run's work dir.

    Returns:
        list[tuple[str, int, str]]: Sorted by unit, then step.

    Raises:
        ReparamError: The folder holds none.
    """
    found = []
    for name in os.listdir(work_dir):
        match = CHECKPOINT_NAME.match(name)
        if match:
            found.append((match.group(1), int(match.group(2)), os.path.join(work_dir, name)))
    if not found:
        raise ReparamError(f'{work_dir} holds no epoch_N.pth or iter_N.pth checkpoint')
    return sorted(found)


def checkpoint_similarity(cfg: Config, path: str) -> dict:
    """The similarity record of one train-form checkpoint.

    Args:
        cfg (Config): The training config of the checkpoint.
        path (str): A train-form checkpoint.

    Returns:
        dict: :func:`similarity_record` of its model.

    Raises:
        ReparamError: The checkpoint is squeezed (no branches) or does not fit.
    """
    trained = load_trained_model(cfg, path)
    if trained.form != TRAIN_FORM:
        raise ReparamError(f'{path} is {trained.form}: it has no branches left to compare; '
                           'give a train-form checkpoint of an OREPA config')
    return similarity_record(model_similarities(trained.model))


class SimilarityRecorder(Hook):
    """Branch cosines of the model before the first step and after every epoch;
    after an epoch also the cosines of the branches' changes since the start
    (``moved``).

    Args:
        log (Callable[[str], None], optional): Receives one progress line per
            record. Defaults to printing it.
    """

    def __init__(self, log: Optional[Callable[[str], None]] = None) -> None:
        self.records = []
        self._start = None
        self._log = log or _print

    def _record(self, runner, epoch: int) -> None:
        model = getattr(runner.model, 'module', runner.model)
        record = dict(epoch=epoch, **similarity_record(model_similarities(model)))
        if self._start is None:
            # float32 holds the start exactly (the parameters are float32).
            self._start = {name: {branch: kernel.float() for branch, kernel in kernels.items()}
                           for name, kernels in layer_contributions(model).items()}
            record['moved'] = None
        else:
            record['moved'] = public_record(
                similarity_record(moved_similarities(model, self._start)))
        self.records.append(record)
        moved = record['moved']
        self._log(f'    epoch {epoch}: mean |cosine| between branches '
                  f'{record["mean_off_diagonal_abs"]:.3f}' +
                  ('' if moved is None else f', between their changes since epoch 0 '
                   f'{moved["mean_off_diagonal_abs"]:.3f}'))

    def before_train(self, runner) -> None:
        self._record(runner, 0)

    def after_train_epoch(self, runner) -> None:
        self._record(runner, runner.epoch + 1)

    def after_train(self, runner) -> None:
        self._start = None  # a few hundred MB for a ResNet-18


def train_scaling(scaling: str, data_root: str, work_dir: str, epochs: int,
                  cfg_options: Optional[dict] = None, seed: int = 0,
                  log: Optional[Callable[[str], None]] = None) -> Tuple[List[dict], dict]:
    """Train one of :data:`SCALING_CONFIGS` on the demo data, recording the
    branch cosines at the start and after every epoch.

    Args:
        scaling (str): A key of :data:`SCALING_CONFIGS`.
        data_root (str): Folder of the demo digits.
        work_dir (str): The run's work dir.
        epochs (int): Training epochs.
        cfg_options (dict, optional): Overrides merged last.
        seed (int): The Runner's seed. Defaults to 0.
        log (Callable[[str], None], optional): Progress lines. Defaults to
            printing them.

    Returns:
        tuple[list[dict], dict]: The :class:`SimilarityRecorder` records and
        the last validation metrics (empty when none ran).
    """
    cfg = demo_training_config(repo_path(SCALING_CONFIGS[scaling]), data_root, work_dir,
                               epochs, cfg_options, seed)
    recorder, validation = SimilarityRecorder(log), ValMetricsRecorder()
    train_on_demo(cfg, hooks=[recorder, validation])
    return recorder.records, validation.metrics[-1] if validation.metrics else {}


def scaling_seed_summary(runs: List[Tuple[int, List[dict], dict]]) -> dict:
    """One scaling over seeds: every run, and the spread of its numbers after
    the last epoch.

    Args:
        runs (list[tuple]): ``(seed, records, val_metrics)`` per seed, as
            :func:`train_scaling` returns them.

    Returns:
        dict: ``seeds`` (each with ``seed``, ``val_metrics`` and its public
        ``records``), and :func:`.seeds.spread` of ``val_top1``,
        ``mean_off_diagonal_abs`` and ``moved_mean_off_diagonal_abs`` (the
        last record's; NaN when nothing moved).
    """
    last = [records[-1] for _, records, _ in runs]
    return dict(
        seeds=[dict(seed=seed, val_metrics=val, records=[public_record(r) for r in records])
               for seed, records, val in runs],
        val_top1=spread(val.get(TOP1, math.nan) for _, _, val in runs),
        mean_off_diagonal_abs=spread(r['mean_off_diagonal_abs'] for r in last),
        moved_mean_off_diagonal_abs=spread(
            r['moved']['mean_off_diagonal_abs'] if r['moved'] else math.nan for r in last))
