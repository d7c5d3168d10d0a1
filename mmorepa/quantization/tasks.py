"""Turning the tensor outputs of an exported model back into the data samples
its library's evaluator reads, per task (classification, segmentation,
one-stage detection), with the model's own post-processing."""
import copy
from typing import List

import numpy as np
import torch
from torch import nn

from ..engine.errors import ReparamError

CLASSIFICATION, SEGMENTATION, DETECTION = 'classification', 'segmentation', 'detection'


def task_of(model: nn.Module) -> str:
    """The task of an OpenMMLab model whose whole tensor forward exports.

    Raises:
        ReparamError: A model of another kind (a two-stage detector needs
            image metadata in its tensor forward).
    """
    from mmdet.models.detectors import SingleStageDetector
    from mmpretrain.models import ImageClassifier
    from mmseg.models.segmentors import BaseSegmentor
    for kind, task in ((ImageClassifier, CLASSIFICATION), (BaseSegmentor, SEGMENTATION),
                       (SingleStageDetector, DETECTION)):
        if isinstance(model, kind):
            return task
    raise ReparamError(f'INT8 evaluation covers mmpretrain classifiers, mmseg segmentors and '
                       f'mmdet one-stage detectors; the config builds {type(model).__name__} '
                       '(export its backbone with tools/export_onnx.py --backbone-only)')


def dynamic_size(task: str) -> bool:
    """Whether the task's test images come in different sizes (the ONNX input's
    height and width stay open): detection resizes keeping the aspect ratio."""
    return task == DETECTION


def predictions(task: str, model: nn.Module, outputs: List[np.ndarray], samples) -> list:
    """Copies of ``samples`` with the predictions of ``outputs`` (the exported
    tensor forward's outputs for that batch), as ``model.predict`` sets them."""
    samples = copy.deepcopy(samples)
    tensors = [torch.from_numpy(np.asarray(output)).float() for output in outputs]
    if task == CLASSIFICATION:
        scores = tensors[0].softmax(dim=1)
        return [sample.set_pred_score(score).set_pred_label(score.argmax().unsqueeze(0))
                for sample, score in zip(samples, scores)]
    if task == SEGMENTATION:
        return model.postprocess_result(tensors[0], samples)
    # A dense head returns one list per output kind (scores, boxes, ...), one
    # tensor per pyramid level; the export flattened them in that order.
    levels = len(model.bbox_head.prior_generator.strides)
    groups = [tensors[start:start + levels] for start in range(0, len(tensors), levels)]
    results = model.bbox_head.predict_by_feat(
        *groups, batch_img_metas=[sample.metainfo for sample in samples], rescale=True)
    return model.add_pred_to_datasample(samples, results)
