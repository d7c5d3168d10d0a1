"""Shipped configs shrunk for a CPU test: only data paths, image sizes,
iteration counts and score thresholds are overridden."""
import os

import torch
from mmengine.config import Config

from mmorepa import OREPAResNet

from tiny_datasets import COCO_CLASSES, make_cityscapes, make_coco, make_imagenet_folders

SIZE_KEYS = ('scale', 'crop_size', 'img_scale')


def _shrink(pipeline, sizes):
    for step in pipeline:
        for key in SIZE_KEYS:
            if key in step and step['type'] in sizes:
                step[key] = sizes[step['type']]
    return pipeline


def _loader(loader, dataset, batch_size, replace=False):
    loader.batch_size = batch_size
    loader.num_workers = 0
    loader.persistent_workers = False
    if replace:  # another dataset type: keep only the shipped pipeline
        loader.dataset = dict(dataset, pipeline=loader.dataset.pipeline)
    else:
        loader.dataset.update(dataset)
    return loader


def make_imagenet_checkpoint(path, depth=50):
    """An mmpretrain-classifier checkpoint of an OREPA-ResNet in train form:
    what the COCO / Cityscapes configs start from.

    Random weights, but BatchNorm statistics measured on random images, as a
    trained checkpoint has them: the detection configs keep norms in eval mode,
    where unit statistics would let activations explode through 50 layers.
    """
    if not os.path.exists(path):
        torch.manual_seed(0)
        backbone = OREPAResNet(depth, out_indices=(3, ))
        for module in backbone.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = None  # cumulative average over the batches
        with torch.no_grad():
            for _ in range(2):
                backbone(torch.randn(8, 3, 64, 64))
        state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
        torch.save(dict(state_dict=state, meta=dict()), path)
    return path


def _pretrained(cfg, data_root):
    cfg.model.backbone.init_cfg.checkpoint = make_imagenet_checkpoint(
        os.path.join(os.path.dirname(data_root), 'orepa-resnet50_in1k.pth'))


def _runtime(cfg, work_dir, by_epoch):
    cfg.work_dir = work_dir
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1 if by_epoch else 2,
                                        by_epoch=by_epoch)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.pop('visualization', None)
    cfg.randomness = dict(seed=0)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                       mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
    return cfg


def classification(config, data_root, work_dir):
    make_imagenet_folders(data_root)
    cfg = Config.fromfile(config)
    sizes = {'RandomResizedCrop': 32, 'ResizeEdge': 36, 'CenterCrop': 32}
    dataset = dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                   ann_file='', with_label=True)
    cfg.model.head.num_classes = 4
    for name in ('train', 'val', 'test'):
        loader = cfg[f'{name}_dataloader']
        _shrink(loader.dataset.pipeline, sizes)
        _loader(loader, dataset, 4, replace=True)
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    return _runtime(cfg, work_dir, by_epoch=True)


def detection(config, data_root, work_dir):
    make_coco(data_root)
    cfg = Config.fromfile(config)
    _pretrained(cfg, data_root)
    sizes = {'Resize': (128, 96)}
    dataset = dict(data_root=data_root, ann_file='annotations/instances.json',
                   data_prefix=dict(img='images/'), metainfo=dict(classes=COCO_CLASSES))
    for name in ('train', 'val', 'test'):
        loader = cfg[f'{name}_dataloader']
        _shrink(loader.dataset.pipeline, sizes)
        _loader(loader, dataset, 2)
    metric = dict(type='CocoMetric', ann_file=os.path.join(data_root,
                                                          'annotations/instances.json'),
                  metric='bbox', format_only=False)
    cfg.val_evaluator = cfg.test_evaluator = metric
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    heads = [cfg.model.roi_head.bbox_head] if 'roi_head' in cfg.model else [cfg.model.bbox_head]
    for head in heads:
        head.num_classes = len(COCO_CLASSES)
    # A few iterations from scratch score low: keep every detection to compare.
    test_cfg = cfg.model.test_cfg
    if 'rcnn' in test_cfg:
        test_cfg.rcnn.score_thr = 0.0
    else:
        test_cfg.score_thr = 0.0
    return _runtime(cfg, work_dir, by_epoch=True)


def segmentation(config, data_root, work_dir):
    make_cityscapes(data_root)
    cfg = Config.fromfile(config)
    _pretrained(cfg, data_root)
    sizes = {'RandomResize': (128, 64), 'RandomCrop': (64, 64), 'Resize': (128, 64)}
    cfg.model.data_preprocessor.size = (64, 64)
    cfg.crop_size = (64, 64)
    for name, split in (('train', 'train'), ('val', 'val'), ('test', 'val')):
        loader = cfg[f'{name}_dataloader']
        _shrink(loader.dataset.pipeline, sizes)
        dataset = dict(data_root=data_root, data_prefix=dict(
            img_path=f'leftImg8bit/{split}', seg_map_path=f'gtFine/{split}'))
        _loader(loader, dataset, 2 if name == 'train' else 1)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    return _runtime(cfg, work_dir, by_epoch=False)
