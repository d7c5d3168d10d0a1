"""Float32, post-training INT8 and quantization-aware INT8 of the shipped
classification configs trained on the demo data, and how their deployed
kernels spread (docs/int8.md).

Each model trains by the demo recipe (:mod:`.demo_training`), is squeezed by
the export path and quantized by ``tools/quantize.py``'s path
(:func:`mmorepa.quantization.ptq.quantize_checkpoint`). Models whose layers
can train on their INT8 deploy grid also train with
``model.backbone.quantize_kernels=<range>``.
"""
import json
import math
import os
from collections import OrderedDict
from typing import Callable, List, Optional, Tuple

import numpy as np
from mmengine.config import Config

from ..engine import export_deploy, is_reparam_config
from ..quantization.onnx_int8 import conv_weights
from ..quantization.ptq import float_onnx_path, quantize_checkpoint
from ..quantization.weight_ranges import channel_stats
from .demo_data import repo_path
from .demo_training import demo_training_config, train_on_demo
from .seeds import spread, spreads
from .training_records import EpochLossRecorder

# name: (config relative to the repository, whether its layers can train on
# their INT8 deploy grid, options). The RepVGG config builds mmpretrain's
# RepVGG; OREPARepVGG(reparam='repvgg') is that network (same modules and keys)
# with the export path, so it squeezes.
MODELS = OrderedDict([
    ('ResNet-18', ('configs/imagenet/resnet18_8xb32-120e_in1k.py', False, {})),
    ('OREPA-ResNet-18', ('configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py', True, {})),
    ('DBB-ResNet-18', ('configs/imagenet/dbb-resnet18_8xb32-120e_in1k.py', False, {})),
    ('RepVGG-A0', ('configs/imagenet/repvgg-A0_8xb32-120e_in1k.py', False,
                   {'model.backbone.type': 'OREPARepVGG', 'model.backbone.reparam': 'repvgg'})),
    ('OREPA-VGG-A0', ('configs/imagenet/orepa-vgg-A0_8xb32-120e_in1k.py', False, {})),
])
TOP1 = 'accuracy/top1'
# Beside each run's last checkpoint: its training loss per epoch, for reuse.
TRAIN_LOSS_FILE = 'train_loss.json'
# A run converged when its last-epoch loss is within this factor of the others'.
CONVERGENCE_FACTOR = 2.0
# The numbers of a row that are summarized over seeds.
ROW_NUMBERS = ('fp32', 'int8', 'drop', 'sqnr', 'agreement', 'train_loss', 'weight_sqnr',
               'worst_weight_sqnr', 'peak_to_std', 'channel_range')


def _print(line: str) -> None:
    print(line, flush=True)


def trained_deploy(name: str, data_root: str, work_dir: str, epochs: int,
                   qat_range: Optional[str] = None, cfg_options: Optional[dict] = None,
                   seed: int = 0, log: Optional[Callable[[str], None]] = None
                   ) -> Tuple[Config, str, List[float]]:
    """Train (or reuse) one run of a :data:`MODELS` entry and squeeze it.

    A finished run is reused when its last checkpoint exists; its training
    losses are read back from :data:`TRAIN_LOSS_FILE` (empty when the run
    predates that file).

    Args:
        name (str): A key of :data:`MODELS`.
        data_root (str): Folder of the demo digits.
        work_dir (str): The run's work dir.
        epochs (int): Training epochs.
        qat_range (str, optional): Train on this INT8 weight grid
            (``model.backbone.quantize_kernels``). Defaults to float training.
        cfg_options (dict, optional): Overrides merged after the model's own.
        seed (int): The Runner's seed. Defaults to 0.
        log (Callable[[str], None], optional): Progress lines. Defaults to
            printing them.

    Returns:
        tuple[Config, str, list[float]]: The training config, the deploy
        checkpoint (the trained one itself for a plain network) and the mean
        training loss of every epoch.
    """
    log = log or _print
    options = dict(MODELS[name][2], **(cfg_options or {}))
    if qat_range:
        options['model.backbone.quantize_kernels'] = qat_range
    cfg = demo_training_config(repo_path(MODELS[name][0]), data_root, work_dir, epochs,
                               options, seed)
    checkpoint = os.path.join(work_dir, f'epoch_{epochs}.pth')
    loss_file = os.path.join(work_dir, TRAIN_LOSS_FILE)
    if os.path.exists(checkpoint):
        log(f'    reusing {checkpoint}')
        losses = []
        if os.path.exists(loss_file):
            with open(loss_file) as file:
                losses = json.load(file)['epoch_losses']
    else:
        recorder = EpochLossRecorder()
        train_on_demo(cfg, hooks=[recorder])
        losses = recorder.losses
        with open(loss_file, 'w') as file:
            json.dump(dict(epoch_losses=[None if math.isnan(x) else x for x in losses]), file)
    losses = [math.nan if x is None else x for x in losses]
    if not is_reparam_config(cfg):
        return cfg, checkpoint, losses
    return cfg, export_deploy(cfg, checkpoint, work_dir).checkpoint, losses


def quantize_run(cfg: Config, deploy: str, weight_range: str, calib_batches: int,
                 rounds: int, repeats: int,
                 log: Optional[Callable[[str], None]] = None) -> dict:
    """INT8 of one deploy checkpoint, and the spread of its deployed kernels.

    Args:
        cfg (Config): The training config.
        deploy (str): The deploy checkpoint (:func:`trained_deploy`).
        weight_range (str): ``'full'`` or ``'reduced'``.
        calib_batches (int): Calibration batches of the training data.
        rounds (int): Latency rounds.
        repeats (int): Calls per latency round.
        log (Callable[[str], None], optional): Progress lines. Defaults to
            printing them, indented.

    Returns:
        dict: :func:`quantize_checkpoint`'s report with ``layers``
        (:func:`channel_stats` of every deployed conv).
    """
    log = log or (lambda line: _print(f'    {line}'))
    out = os.path.join(os.path.dirname(deploy), f'int8_{weight_range}.onnx')
    report = quantize_checkpoint(cfg, deploy, out, calib_batches, 'train', None, rounds,
                                 repeats, weight_range, log=log)
    return dict(report, layers=[channel_stats(weight)
                                for _, weight in conv_weights(float_onnx_path(out))])


def row_summary(run: dict) -> dict:
    """The row values of one :func:`quantize_run`.

    Args:
        run (dict): What :func:`quantize_run` returns.

    Returns:
        dict: ``fp32``, ``int8`` and ``drop`` (top-1 %), ``sqnr``,
        ``agreement``, ``latency``, ``train_loss`` (the last epoch's mean;
        NaN when unknown), and the deployed kernels' median and worst weight
        SQNR, median ``peak_to_std`` and largest ``channel_range``.
    """
    fp32, int8 = run['metrics']['fp32'][TOP1], run['metrics']['int8'][TOP1]
    layers = run['layers']
    losses = run.get('train_losses') or [math.nan]
    return dict(fp32=fp32, int8=int8, drop=fp32 - int8, sqnr=run['sqnr_db'],
                agreement=run['agreement'], latency=run['latency_ratio'],
                train_loss=losses[-1],
                weight_sqnr=float(np.median([x['sqnr_per_channel_db'] for x in layers])),
                worst_weight_sqnr=float(min(x['sqnr_per_channel_db'] for x in layers)),
                peak_to_std=float(np.median([x['peak_to_std'] for x in layers])),
                channel_range=float(max(x['channel_range'] for x in layers)))


def seed_summary(runs: List[dict]) -> dict:
    """One row over the runs of several seeds.

    Args:
        runs (list[dict]): One :func:`quantize_run` (with ``seed`` and
            ``train_losses``) per seed.

    Returns:
        dict: ``seeds``; :func:`.seeds.spread` of every number of
        :data:`ROW_NUMBERS`; ``latency``, the spread of the per-seed median
        INT8 / float32 latency ratios.
    """
    rows = [row_summary(run) for run in runs]
    summary = dict(seeds=[run.get('seed') for run in runs], **spreads(rows, ROW_NUMBERS))
    summary['latency'] = spread(row['latency']['median'] for row in rows)
    return summary


def converged(train_loss: float, others: List[float]) -> bool:
    """Whether a run's last-epoch loss is within :data:`CONVERGENCE_FACTOR` of
    the median of the other runs' (a NaN loss never is).

    Args:
        train_loss (float): The run's last-epoch mean training loss.
        others (list[float]): The other models' (finite ones count).

    Returns:
        bool: True when within the factor, or when there is nothing to
        compare with.
    """
    finite = sorted(x for x in others if math.isfinite(x))
    if not math.isfinite(train_loss):
        return False
    if not finite:
        return True
    middle = len(finite) // 2
    median = finite[middle] if len(finite) % 2 else (finite[middle - 1] + finite[middle]) / 2
    return train_loss <= CONVERGENCE_FACTOR * median
