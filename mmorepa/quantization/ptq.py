"""INT8 of a deploy checkpoint, compared with its float32 self.

The one path of ``tools/quantize.py`` and the demo table: the squeezed model
is exported to ONNX (batch size open), onnxruntime quantizes it statically on
batches of the config's own dataloader (:mod:`.onnx_int8`), and both files
run on the config's test data through the config's own evaluator.
"""
import copy
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from ..engine.checkpoint_io import atomic_output
from ..engine.deploy import INT8_GRID_KEY
from ..engine.errors import ReparamError
from ..engine.onnx_export import export_onnx, export_target, onnxruntime_session
from ..engine.trained_model import SQUEEZED, load_trained_model
from ..layers import WEIGHT_RANGES
from .evaluation import agreement, latency_rounds, ratio_spread, sqnr_db
from .onnx_int8 import (BatchReader, conv_nodes, executed_conv_names, quantize_onnx_int8,
                        weight_overrides)
from .tasks import dynamic_size, predictions, task_of

CALIBRATION_SPLITS = ('train', 'val', 'test')


def float_onnx_path(path: str) -> str:
    """Where the float32 ONNX file is written beside the INT8 one ``path``."""
    return os.path.splitext(path)[0] + '_fp32.onnx'


def deterministic_loader(cfg: Config, split: str) -> dict:
    """The ``<split>_dataloader`` of ``cfg``, unshuffled and with the test
    pipeline (calibration wants the images as the deployed model sees them)."""
    loader = copy.deepcopy(cfg[f'{split}_dataloader'])
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    dataset = loader['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    dataset['pipeline'] = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    return loader


def _batches(model, loader, limit: Optional[int]):
    for index, batch in enumerate(loader):
        if limit is not None and index >= limit:
            return
        data = model.data_preprocessor(batch, False)
        yield data['inputs'].float().numpy(), data['data_samples']


def _calibration_batches(model, cfg: Config, split: str, limit: int) -> list:
    if not cfg.get(f'{split}_dataloader'):
        raise ReparamError(f'no calibration data: the config has no {split}_dataloader')
    try:
        loader = Runner.build_dataloader(deterministic_loader(cfg, split))
    except (ValueError, FileNotFoundError) as error:  # what the datasets raise when empty
        raise ReparamError(f'no calibration data: the {split} dataloader cannot be built '
                           f'({error})') from error
    batches = list(_batches(model, loader, limit))
    if not batches:
        raise ReparamError(f'no calibration data: the {split} dataloader gives no batch')
    return batches


def _trained_grid(loaded: dict, checkpoint: str) -> Optional[dict]:
    """The INT8 grid a deploy checkpoint carries (a run trained on it), checked:
    checkpoints are untrusted input."""
    grid = ((loaded.get('meta') or {}).get('mmorepa') or {}).get(INT8_GRID_KEY)
    if grid is None:
        return None
    valid = (isinstance(grid, dict) and grid.get('range') in WEIGHT_RANGES
             and isinstance(grid.get('scales'), dict)
             and all(isinstance(s, torch.Tensor) and s.dim() == 1
                     for s in grid['scales'].values()))
    if not valid:
        raise ReparamError(f"{checkpoint}: meta['mmorepa'][{INT8_GRID_KEY!r}] must hold a range "
                           f'in {tuple(WEIGHT_RANGES)} and per-channel scale vectors by conv '
                           'name')
    return grid


def quantize_checkpoint(cfg: Config, checkpoint: str, out: str, calib_batches: int = 8,
                        calib_split: str = 'train', test_batches: Optional[int] = None,
                        rounds: int = 5, repeats: int = 20, weight_range: Optional[str] = None,
                        log: Callable[[str], None] = print) -> Dict[str, object]:
    """Quantize a deploy checkpoint to INT8 ONNX and compare it with the
    float32 ONNX of the same checkpoint, on the config's test data with the
    config's evaluator (classifiers, segmentors, one-stage detectors:
    :func:`.tasks.task_of`).

    Writes ``out`` (INT8, QDQ) and :func:`float_onnx_path` of it, atomically
    and only when everything before succeeded.

    Args:
        cfg (Config): The training config or the deploy config.
        checkpoint (str): A squeezed checkpoint (export hook or
            ``tools/reparameterize.py``). If it holds INT8 scales (a run that
            trained on its INT8 grid) they are the weight scales.
        out (str): The INT8 ONNX file.
        calib_batches (int): Batches of the calibration data.
        calib_split (str): ``'train'`` (default), ``'val'`` or ``'test'``:
            whose dataloader calibrates (with the test pipeline).
        test_batches (int, optional): Batches of the test data compared;
            default all.
        rounds (int): Latency rounds. repeats (int): Calls per round.
        weight_range (str, optional): ``'full'`` or ``'reduced'`` weight grids
            (:data:`mmorepa.layers.WEIGHT_RANGES`); default: the checkpoint's
            grid, else ``'full'``.
        log (Callable[[str], None]): Progress lines.

    Returns:
        dict: ``metrics`` (fp32 / int8 dicts of the evaluator), ``sqnr_db``,
        ``agreement``, ``calibration_sqnr_db`` (on the calibration batches),
        ``latency_s`` (fp32 / int8 per round, batch 1), ``latency_ratio``
        (int8 / fp32: median, min, max), ``weights`` (``'checkpoint scales'``
        or ``'calibrated'``), ``weight_range``.

    Raises:
        ReparamError: A train-form checkpoint, a model of another task, no
            calibration data, or a failed export or quantization.
    """
    if calib_split not in CALIBRATION_SPLITS:
        raise ReparamError(f'calib_split must be one of {CALIBRATION_SPLITS}, got {calib_split!r}')
    for name, value in (('calib_batches', calib_batches), ('rounds', rounds),
                        ('repeats', repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ReparamError(f'{name} must be a positive int, got {value!r}')
    loaded = load_trained_model(cfg, checkpoint)
    if loaded.form != SQUEEZED:
        raise ReparamError(f'{checkpoint} is a {loaded.form} checkpoint; INT8 starts from the '
                           'deploy checkpoint (written by DeployCheckpointHook or '
                           'tools/reparameterize.py)')
    model = loaded.model
    task = task_of(model)
    grid = _trained_grid(loaded.checkpoint, checkpoint)
    weight_range = weight_range or (grid['range'] if grid else 'full')
    if weight_range not in WEIGHT_RANGES:
        raise ReparamError(f'weight_range must be one of {tuple(WEIGHT_RANGES)}, '
                           f'got {weight_range!r}')
    if grid and weight_range != grid['range']:
        raise ReparamError(f'{checkpoint} was trained on the {grid["range"]!r} INT8 grid; '
                           f'weight_range {weight_range!r} would quantize its weights again')
    scales = grid['scales'] if grid else {}
    with DefaultScope.overwrite_default_scope(loaded.cfg.get('default_scope')):
        calibration = _calibration_batches(model, loaded.cfg, calib_split, calib_batches)
        test_loader = Runner.build_dataloader(loaded.cfg.test_dataloader)
        evaluators = {kind: Evaluator(copy.deepcopy(loaded.cfg.test_evaluator))
                      for kind in ('fp32', 'int8')}
    first = torch.from_numpy(calibration[0][0][:1])
    with tempfile.TemporaryDirectory() as work:
        fp32_path, int8_path = os.path.join(work, 'fp32.onnx'), os.path.join(work, 'int8.onnx')
        log(f'exporting the deploy model to ONNX ({loaded.form} checkpoint {checkpoint})')
        export_onnx(model, first, fp32_path, dynamic_batch=True,
                    dynamic_size=dynamic_size(task))
        overrides = None
        if scales:
            nodes = conv_nodes(executed_conv_names(model, export_target(model, False), first),
                               fp32_path)
            overrides = weight_overrides(nodes, scales, weight_range)
            log(f'weights: the INT8 grid the run trained on ({len(overrides)} convs); '
                f'{len(nodes) - len(overrides)} other conv(s) calibrated')
        quantize_onnx_int8(fp32_path, int8_path,
                           BatchReader((inputs for inputs, _ in calibration), len(calibration),
                                       log), overrides, weight_range)
        sessions = {'fp32': onnxruntime_session(fp32_path),
                    'int8': onnxruntime_session(int8_path)}
        report = _compare(sessions, evaluators, test_loader, task, model, calibration,
                          test_batches, log)
        log(f'timing batch-1 inference: {rounds} rounds of {repeats} calls')
        feed = {'input': calibration[0][0][:1]}
        times = latency_rounds({kind: (lambda s=s: s.run(None, feed))
                                for kind, s in sessions.items()}, rounds, repeats)
        report.update(latency_s=times, latency_ratio=ratio_spread(times['int8'], times['fp32']),
                      weights='checkpoint scales' if scales else 'calibrated',
                      weight_range=weight_range)
        for source, target in ((fp32_path, float_onnx_path(out)), (int8_path, out)):
            with atomic_output(target, source=checkpoint) as temporary:
                shutil.copyfile(source, temporary)
    return report


def _compare(sessions, evaluators, test_loader, task, model, calibration, test_batches,
             log) -> Dict[str, object]:
    evaluators['fp32'].dataset_meta = evaluators['int8'].dataset_meta = \
        test_loader.dataset.metainfo
    outputs_of: Dict[str, List[List[np.ndarray]]] = {'fp32': [], 'int8': []}
    total = len(test_loader) if test_batches is None else min(test_batches, len(test_loader))
    for index, (inputs, samples) in enumerate(_batches(model, test_loader, test_batches)):
        for kind, session in sessions.items():
            outputs = session.run(None, {'input': inputs})
            outputs_of[kind].append(outputs)
            evaluators[kind].process(predictions(task, model, outputs, samples))
        log(f'comparing on the test data: batch {index + 1}/{total}')
    calibrated = {kind: [session.run(None, {'input': inputs}) for inputs, _ in calibration]
                  for kind, session in sessions.items()}
    images = sum(len(outputs[0]) for outputs in outputs_of['fp32'])
    return dict(metrics={kind: evaluators[kind].evaluate(images) for kind in ('fp32', 'int8')},
                sqnr_db=sqnr_db(_flat(outputs_of['fp32']), _flat(outputs_of['int8'])),
                agreement=agreement(_first(outputs_of['fp32']), _first(outputs_of['int8'])),
                calibration_sqnr_db=sqnr_db(_flat(calibrated['fp32']), _flat(calibrated['int8'])))


def _flat(batches) -> np.ndarray:
    """Every output value of every batch, as one vector."""
    return np.concatenate([np.ravel(output) for outputs in batches for output in outputs])


def _first(batches) -> np.ndarray:
    """The first output of every batch with the class axis last, one row per
    location (an image, a pixel, an anchor position)."""
    return np.concatenate([np.moveaxis(outputs[0], 1, -1).reshape(-1, outputs[0].shape[1])
                           for outputs in batches])
