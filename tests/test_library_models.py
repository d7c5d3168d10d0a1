"""Full models of each library's shipped configs, with the OREPA backbone: a
training step and an inference on CPU (small inputs)."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

import mmorepa
from mmorepa.layers import ReparamConv2d

CONFIGS = {
    'imagenet-resnet50': 'configs/imagenet/orepa-resnet50_8xb32-120e_in1k.py',
    'coco-faster-rcnn': 'configs/coco/faster-rcnn_orepa-r50_fpn_1x_coco.py',
    'coco-retinanet': 'configs/coco/retinanet_orepa-r50_fpn_1x_coco.py',
    'cityscapes-pspnet': 'configs/cityscapes/pspnet_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'cityscapes-deeplabv3plus':
    'configs/cityscapes/deeplabv3plus_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'cityscapes-pspnet-dbb': 'configs/cityscapes/pspnet_dbb-r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'coco-retinanet-dbb': 'configs/coco/retinanet_dbb-r50_fpn_1x_coco.py',
}
SIZE = 64


def build_model(config_path):
    cfg = Config.fromfile(config_path)
    cfg.model.backbone.init_cfg = None  # no ImageNet checkpoint offline
    if cfg.default_scope == 'mmseg':
        cfg.model.data_preprocessor.size = (SIZE, SIZE)
    registry = {'mmpretrain': 'mmpretrain', 'mmdet': 'mmdet', 'mmseg': 'mmseg'}[cfg.default_scope]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        models = __import__(f'{registry}.registry', fromlist=['MODELS']).MODELS
        model = revert_sync_batchnorm(models.build(cfg.model))  # SyncBN needs CUDA
    return cfg.default_scope, model


def classification_batch():
    from mmpretrain.structures import DataSample
    inputs = [torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8) for _ in range(2)]
    samples = [DataSample().set_gt_label(label) for label in (3, 7)]
    return dict(inputs=inputs, data_samples=samples)


def detection_batch():
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=2, image_shapes=[(3, SIZE, SIZE)] * 2, num_items=[3, 2],
                          num_classes=80)


def segmentation_batch():
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                                             pad_shape=(SIZE, SIZE), img_path='x.png'))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, SIZE, SIZE)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


BATCHES = {'mmpretrain': classification_batch, 'mmdet': detection_batch,
           'mmseg': segmentation_batch}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_shipped_config_trains_and_predicts_with_orepa_backbone(name):
    torch.manual_seed(0)
    scope, model = build_model(CONFIGS[name])
    assert type(model.backbone) is mmorepa.OREPAResNet
    assert any(isinstance(m, ReparamConv2d) for m in model.backbone.modules())
    trained = model.backbone.layer2[0].conv2
    trained = trained.kxk.weight if name.endswith('dbb') else trained.branches['dws'].pointwise
    batch = BATCHES[scope]()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    with DefaultScope.overwrite_default_scope(scope):
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        assert torch.isfinite(loss)
        before = trained.detach().clone()
        loss.backward()
        optimizer.step()
        assert not torch.equal(before, trained)
        # mmdet's configs freeze the stem and stage 1 (frozen_stages=1).
        frozen = model.backbone.frozen_stages >= 1
        assert all(p.requires_grad != frozen for p in model.backbone.layer1.parameters())
        model.eval()
        with torch.no_grad():
            predictions = model(**model.data_preprocessor(batch, False), mode='predict')
    assert len(predictions) == 2


SHIPPED = sorted(str(p) for p in __import__('pathlib').Path('configs').rglob('*.py')
                 if '_base_' not in p.parts)
STOCK_TYPES = ('ResNet', 'ResNetV1c', 'ResNeXt', 'RepVGG', 'CSPDarknet')


def is_plain_row(config):
    """Deploy configs and the plain baselines: stock backbones, no plugin."""
    name = os.path.basename(config)
    return '/deploy/' in config or not any(tag in name for tag in ('orepa', 'dbb'))


@pytest.mark.parametrize('config', SHIPPED)
def test_every_shipped_config_builds_its_backbone(config):
    cfg = Config.fromfile(config)
    if is_plain_row(config):
        # The library's own hooks (YOLOX's EMA and mode switch) stay; none of ours.
        assert 'custom_imports' not in cfg
        assert 'DeployCheckpointHook' not in [h['type'] for h in cfg.get('custom_hooks', [])]
        assert cfg.model.backbone.type in STOCK_TYPES
    else:
        assert 'mmorepa' in cfg.custom_imports.imports
    if not is_plain_row(config) and 'published' not in config:
        assert [h['type'] for h in cfg.custom_hooks][-1] == 'DeployCheckpointHook'
    backbone = cfg.model.backbone
    backbone.pop('init_cfg', None)
    # The OREPABackbone wrapper builds the backbone it wraps.
    expected = backbone.backbone.type if backbone.type == 'OREPABackbone' else backbone.type
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        from mmengine.registry import MODELS
        assert type(MODELS.build(backbone)).__name__ == expected


# The paper's Table 4 rows (the deeper and wider ones inherit their recipe from
# these); the other backbones keep their library's recipe.
IMAGENET_ROWS = sorted(p for p in SHIPPED if '/imagenet/' in p and 'published' not in p
                       and any(tag in p for tag in ('resnet', 'vgg'))
                       and not any(tag in p for tag in ('resnet101', '-A1', '-A2')))


@pytest.mark.parametrize('config', IMAGENET_ROWS)
def test_imagenet_rows_use_the_authors_recipe(config):
    """Every Table 4 row: SGD with no weight decay on norms and biases, biases at
    twice the learning rate (norm biases too), scales and kernels decayed;
    PyTorch's default start with every BN at gamma = 1."""
    cfg = Config.fromfile(config)
    cfg.model.head.num_classes = 10
    model = mmorepa.engine.build_model(cfg)
    model.init_weights()
    names = {id(p): name for name, p in model.named_parameters()}
    norms = {f'{n}.{p}' for n, m in model.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             for p in ('weight', 'bias')}
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    checked = 0
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            name = names[id(param)]
            bias, norm = name.endswith('.bias'), name in norms
            assert group['lr'] == pytest.approx(0.2 if bias else 0.1), name
            assert group['weight_decay'] == (0.0 if bias or norm else 1e-4), name
            checked += 1
    assert checked == len(names)
    if 'vgg' not in config.lower():
        gammas = [m.weight for m in model.backbone.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert gammas and all(torch.equal(g, torch.ones_like(g)) for g in gammas)
