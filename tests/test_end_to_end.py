"""Each model family trains through mmengine's Runner from its shipped config,
starting from its library's stock backbone weights (exactly: before the first
step the OREPA backbone gives the stock backbone's outputs) or, for a whole
re-parameterized detector, from a stock detector checkpoint (the whole
model's outputs are the stock detector's), writes a squeezed checkpoint with
DeployCheckpointHook, and the written deploy config (stock model, no plugin)
reproduces the predictions and metrics."""
import functools
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import record_outputs_hook  # noqa: F401  (registers RecordBackboneHook)
import tiny_runs
from helpers import assert_close_to_scale
from mmorepa.engine import read_checkpoint, reparam_paths
from mmorepa.engine.configs import stock_backbone_config
from mmorepa.engine.deploy import tensor_outputs
from mmorepa.engine.onnx_export import flatten_tensors
from mmorepa.layers import ReparamConv2d
from mmorepa.quantization.ptq import quantize_checkpoint
from record_outputs_hook import fixed_input
from tools import test as test_tool

# Relative tolerance of predictions, float32: squeezed vs unsqueezed sums.
TOLERANCE = 1e-4
# Families whose deploy checkpoint also goes to INT8 (tools/quantize.py's
# path), one per task: the library's metric keys come back for float32 and
# INT8, and the float32 ONNX model scores what the deploy model scores.
INT8_FAMILIES = ('classification', 'retinanet-fpn-head', 'deeplabv3plus-head')
# Relative tolerance (max error / max output) of the backbone started from
# stock weights vs the stock backbone, float32: 1e-5, or what the stock network
# itself moves when its conv weights move by a relative 5e-7 (about four
# float32 roundings), where that is more. Random R-50-D8 networks amplify
# weight rounding about 300x; the standard ResNets stay below 1e-5.
STOCK_START_TOLERANCE = 1e-5
WEIGHT_ROUNDING = 5e-7


@torch.no_grad()
def rounding_sensitivity(backbone, x):
    """Largest relative output change of ``backbone`` when every conv weight
    is perturbed by a relative ``WEIGHT_ROUNDING`` (random signs)."""
    reference = [out.clone() for out in backbone(x)]
    kept = {name: p.clone() for name, p in backbone.named_parameters()}
    generator = torch.Generator().manual_seed(1)
    for p in backbone.parameters():
        if p.dim() == 4:
            p.mul_(1 + WEIGHT_ROUNDING * torch.randn(p.shape, generator=generator).sign())
    moved = backbone(x)
    for name, p in backbone.named_parameters():
        p.copy_(kept[name])
    return max(((m - r).abs().max() / r.abs().max()).item() for m, r in zip(moved, reference))


FAMILIES = {
    'classification': (tiny_runs.classification,
                       'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'),
    'faster-rcnn': (tiny_runs.detection, 'configs/coco/faster-rcnn_orepa-r50_fpn_1x_coco.py'),
    'pspnet': (tiny_runs.segmentation,
               'configs/cityscapes/pspnet_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py'),
    # Other backbones: OREPA through conv_cfg, or the OREPABackbone wrapper.
    'retinanet-regnetx': (tiny_runs.detection,
                          'configs/coco/retinanet_orepa-regnetx-3.2GF_fpn_1x_coco.py'),
    'deeplabv3plus-mobilenet-v2':
    (tiny_runs.segmentation,
     'configs/cityscapes/deeplabv3plus_orepa-mobilenet-v2-d8_4xb2-80k_cityscapes-512x1024.py'),
    'classification-mobilenet-v2': (tiny_runs.classification,
                                    'configs/imagenet/orepa-mobilenet-v2_8xb32_in1k.py'),
    'classification-convnext': (tiny_runs.classification,
                                'configs/imagenet/orepa-convnext-tiny_32xb128_in1k.py'),
    # OREPA beyond the backbone: necks and heads (docs/necks_heads.md). These
    # two also cover the backbone-only RetinaNet and DeepLabV3+ configs: the
    # same OREPA-ResNet-50, its stock start and its export.
    'retinanet-fpn-head': (tiny_runs.detection,
                           'configs/coco/retinanet_orepa-r50_orepa-fpn-head_1x_coco.py'),
    # From a stock YOLOX-S checkpoint. Its quadratic warm-up spans 5 epochs of
    # COCO (73k steps): squeezed into one tiny epoch, three steps at its rate
    # move the weights of any YOLOX-S (stock too) so far that eval-mode box
    # sizes overflow; 1/1000 of it keeps them finite.
    'yolox-s': (functools.partial(tiny_runs.detection, start='model', lr_scale=1e-3),
                'configs/coco/yolox_s_orepa_8xb8-300e_coco.py'),
    'deeplabv3plus-head':
    (tiny_runs.segmentation,
     'configs/cityscapes/deeplabv3plus_orepa-r50-d8_orepa-head_4xb2-40k_cityscapes-512x1024.py'),
}


def prediction_tensors(sample):
    """The tensors a prediction is judged by, per task."""
    if 'pred_instances' in sample:
        return [sample.pred_instances.bboxes, sample.pred_instances.scores]
    if 'seg_logits' in sample:
        return [sample.seg_logits.data]
    return [sample.pred_score]


def predictions(runner):
    model = runner.model.eval()
    outputs = []
    with torch.no_grad(), DefaultScope.overwrite_default_scope(runner.cfg.default_scope):
        for batch in runner.test_dataloader:
            outputs += [t for s in model.test_step(batch) for t in prediction_tensors(s)]
    return outputs


def assert_same_predictions(reference, actual):
    assert len(reference) == len(actual) and reference
    for ref, act in zip(reference, actual):
        assert ref.shape == act.shape
        if ref.numel():
            scale = ref.abs().max().clamp_min(1e-6)
            assert (ref - act).abs().max() <= TOLERANCE * scale


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_family_trains_exports_and_deploys(family, tmp_path):
    build, config = FAMILIES[family]
    cfg = build(config, str(tmp_path / 'data'), str(tmp_path / 'train'))
    assert 'DeployCheckpointHook' in [hook['type'] for hook in cfg.custom_hooks]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert any(isinstance(m, ReparamConv2d) for m in runner.model.modules())
    before = torch.load(os.path.join(cfg.work_dir, 'before_train.pth'))
    if cfg.get('load_from'):  # the whole model started from the stock model
        stock = tiny_runs.stock_model(cfg)
        started = before['model']
        with torch.no_grad(), DefaultScope.overwrite_default_scope(cfg.default_scope):
            expected = flatten_tensors(tensor_outputs(stock, fixed_input()))
        tolerance = max(STOCK_START_TOLERANCE, rounding_sensitivity(stock.backbone,
                                                                    fixed_input()))
    else:
        stock = tiny_runs.stock_backbone(cfg, cfg.model.backbone.init_cfg.checkpoint)
        started = before['backbone']
        with torch.no_grad():
            expected = stock(fixed_input())
        tolerance = max(STOCK_START_TOLERANCE, rounding_sensitivity(stock, fixed_input()))
    print(f'{family}: started from stock weights, tolerance {tolerance:.1e}')
    assert len(started) >= 1 and len(expected) == len(started)
    for output, reference in zip(started, expected):
        assert_close_to_scale(output, reference, rel=tolerance)
    # The deploy checkpoint is made from the last checkpoint, which holds the
    # averaged weights where the config runs EMAHook (ConvNeXt): test those.
    last = read_checkpoint(runner.message_hub.get_info('last_ckpt'))
    runner.model.load_state_dict(last['state_dict'], strict=True)
    trained_metrics = runner.test()
    trained_predictions = predictions(runner)
    assert any(p.numel() for p in trained_predictions)

    deploy_cfg = Config.fromfile(os.path.join(cfg.work_dir, 'deploy_config.py'))
    assert deploy_cfg.model.backbone.type == stock_backbone_config(cfg)['type']
    assert reparam_paths(deploy_cfg) == []
    assert 'mmorepa' not in deploy_cfg.custom_imports.imports  # the test's own hook stays
    assert os.path.exists(deploy_cfg.load_from) and deploy_cfg.load_from.endswith('_deploy.pth')
    deploy_cfg.work_dir = str(tmp_path / 'deploy')
    deploy_runner = Runner.from_cfg(deploy_cfg)
    deploy_metrics = deploy_runner.test()
    assert not any(isinstance(m, ReparamConv2d) for m in deploy_runner.model.modules())
    assert_same_predictions(trained_predictions, predictions(deploy_runner))
    assert trained_metrics.keys() == deploy_metrics.keys()
    for key, value in trained_metrics.items():
        assert deploy_metrics[key] == pytest.approx(value, abs=1e-6), key
    if family == 'classification':  # the command-line path, once
        assert test_tool.main([os.path.join(cfg.work_dir, 'deploy_config.py'),
                               deploy_cfg.load_from, '--work-dir',
                               str(tmp_path / 'tool')]) == deploy_metrics
    if family in INT8_FAMILIES:
        report = quantize_checkpoint(deploy_cfg, deploy_cfg.load_from,
                                     str(tmp_path / 'int8.onnx'), calib_batches=1, rounds=1,
                                     repeats=1, log=lambda line: None)
        print(f'{family}: INT8 {report["metrics"]}, SQNR {report["sqnr_db"]:.1f} dB')
        for kind in ('fp32', 'int8'):
            assert report['metrics'][kind].keys() == deploy_metrics.keys()
        for key, value in deploy_metrics.items():
            assert report['metrics']['fp32'][key] == pytest.approx(value, abs=1e-3), key
        assert report['calibration_sqnr_db'] >= 10
