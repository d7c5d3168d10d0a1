"""Shipped configs shrunk for a CPU test: only data paths, image sizes,
iteration counts, schedules and score thresholds are overridden, and the
model starts from a stock checkpoint: the backbone from its library's ResNet
(or the stock backbone the config deploys as), or the whole model from a
checkpoint of the stock model the config deploys as (``start='model'``)."""
import copy
import os

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmorepa.engine import build_model, deploy_config

from tiny_datasets import COCO_CLASSES, make_cityscapes, make_coco, make_imagenet_folders

SIZE_KEYS = ('scale', 'crop_size', 'img_scale')
# Of YOLOX's mosaic pipeline: each of its four images, and the random affine
# crop back to one image's size.
MOSAIC_SIZE = (64, 64)


def _shrink(pipeline, sizes):
    for step in pipeline:
        for key in SIZE_KEYS:
            if key in step and step['type'] in sizes:
                step[key] = sizes[step['type']]
        if step['type'] == 'RandomAffine' and 'border' in step:
            step['border'] = (-MOSAIC_SIZE[0] // 2, -MOSAIC_SIZE[1] // 2)
    return pipeline


def _loader(loader, dataset, batch_size, replace=False):
    loader.batch_size = batch_size
    loader.num_workers = 0
    loader.persistent_workers = False
    if replace:  # another dataset type: keep only the shipped pipeline
        loader.dataset = dict(dataset, pipeline=loader.dataset.pipeline)
    elif 'dataset' in loader.dataset:  # a wrapper (YOLOX's MultiImageMixDataset)
        loader.dataset.dataset.update(dataset)
    else:
        loader.dataset.update(dataset)
    return loader


def _starting_schedulers(cfg):
    """The schedulers that begin at 0: those beginning after a one-epoch run
    (ConvNeXt's cosine after its 20 warm-up epochs) cannot be built."""
    schedulers = cfg.param_scheduler
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    cfg.param_scheduler = [step for step in schedulers if step.get('begin', 0) < 1]


def _measured_statistics(model, forward=None, batches=None):
    """BatchNorm statistics measured on images, as a trained checkpoint has
    them: the detection configs keep norms in eval mode, where unit statistics
    would let activations explode through 50 layers. ``forward`` runs the
    model on a batch of ``batches`` (default: calls it on random images)."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # cumulative average over the batches
    model.train()
    with torch.no_grad():
        for batch in batches or [torch.randn(8, 3, 64, 64) for _ in range(2)]:
            (forward or model)(batch)
    model.eval()  # the stock ResNets' train() returns None
    return model


# Stock ResNets of each library, saved as their users have them: an mmpretrain
# classifier checkpoint (keys under 'backbone.', a head beside), or a bare
# torchvision state dict (what 'torchvision://resnet50' loads: 'fc.*' beside,
# no 'num_batches_tracked').
STOCK = {
    'mmpretrain': (lambda: __import__('mmpretrain.models', fromlist=['ResNet']).ResNet(
        18, out_indices=(3, ), zero_init_residual=False), 'backbone.'),
    'mmdet': (lambda: __import__('mmdet.models', fromlist=['ResNet']).ResNet(
        50, zero_init_residual=False), None),
    'mmseg': (lambda: __import__('mmseg.models', fromlist=['ResNet']).ResNet(
        50, deep_stem=False, zero_init_residual=False), 'backbone.'),
}


def _stock_form(cfg):
    """How the stock checkpoint of ``cfg``'s backbone is built and keyed: the
    library's ResNet as its users have it (``STOCK``), or for any other
    backbone the deploy config's stock backbone in a classifier checkpoint."""
    if cfg.model.backbone.type.startswith('OREPAResNet'):
        return STOCK[cfg.default_scope]
    return (lambda: build_model(deploy_config(cfg)).backbone, 'backbone.')


def stock_backbone(cfg, checkpoint=None):
    """The stock counterpart of ``cfg``'s backbone, loaded from ``checkpoint``."""
    _, prefix = _stock_form(cfg)
    torch.manual_seed(0)
    backbone = build_model(deploy_config(cfg)).backbone
    if checkpoint is not None:
        state = torch.load(checkpoint, weights_only=True)
        state = state.get('state_dict', state)
        if prefix:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        else:
            state = {k: v for k, v in state.items() if not k.startswith('fc.')}
        backbone.load_state_dict(state, strict=True)
    backbone.eval()  # the stock ResNets' train() returns None
    return backbone


def make_stock_checkpoint(cfg, path):
    """A stock checkpoint of ``cfg``'s backbone in the form its users have."""
    if not os.path.exists(path):
        build, prefix = _stock_form(cfg)
        torch.manual_seed(0)
        backbone = build()
        backbone.init_weights()  # the library's start (ResNets: every residual branch on)
        backbone = _measured_statistics(backbone)
        state = backbone.state_dict()
        if prefix:
            state = {f'backbone.{k}': v for k, v in state.items()}
            state['head.fc.weight'] = torch.randn(4, 512)
            torch.save(dict(state_dict=state, meta=dict()), path)
        else:
            state = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
            state.update({'fc.weight': torch.randn(1000, 2048), 'fc.bias': torch.zeros(1000)})
            torch.save(state, path)
    return path


def start_from_stock(cfg, data_root):
    """The backbone starts from its library's stock ResNet through
    ``init_cfg=Pretrained``, as a user keeps it; its outputs before the first
    step are recorded (``RecordBackboneHook``)."""
    checkpoint = make_stock_checkpoint(
        cfg, os.path.join(os.path.dirname(data_root), f'stock-{cfg.default_scope}.pth'))
    if cfg.model.get('pretrained'):
        cfg.model.pretrained = None  # mmseg's: it would replace the backbone's init_cfg
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    prefix = _stock_form(cfg)[1]
    if prefix:
        cfg.model.backbone.init_cfg.prefix = prefix
    _record_start(cfg)
    return checkpoint


def start_model_from_stock(cfg, data_root):
    """The whole model starts from a checkpoint of the stock model its config
    deploys as (``load_from``, as a user fine-tunes a released detector): every
    re-param layer, in the backbone, neck and heads, solves itself from its
    stock conv. Its outputs before the first step are recorded."""
    checkpoint = os.path.join(os.path.dirname(data_root), f'stock-model-{cfg.default_scope}.pth')
    if not os.path.exists(checkpoint):
        torch.manual_seed(0)
        model = build_model(deploy_config(cfg))
        model.init_weights()
        # On the test images, through the model's own preprocessing (YOLOX
        # sees raw pixels): the heads' statistics depend on what images look like.
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
            _measured_statistics(
                model, lambda batch: model(model.data_preprocessor(batch)['inputs'], mode='tensor'),
                batches=list(loader))
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.load_from = checkpoint
    _record_start(cfg)
    return checkpoint


def stock_model(cfg):
    """The stock model ``cfg`` deploys as, loaded from its stock checkpoint."""
    model = build_model(deploy_config(cfg))
    model.load_state_dict(torch.load(cfg.load_from, weights_only=True)['state_dict'],
                          strict=True)
    return model.eval()


def _record_start(cfg):
    cfg.custom_imports = dict(imports=['mmorepa', 'record_outputs_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks.append(dict(type='RecordBackboneHook'))


def _runtime(cfg, work_dir, by_epoch):
    cfg.work_dir = work_dir
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1 if by_epoch else 2,
                                        by_epoch=by_epoch)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.default_hooks.pop('visualization', None)
    # mmengine keeps one visualizer per name in a process and mmdet's and
    # mmseg's configs name theirs 'visualizer': without a name of its own, a run
    # would log into the work_dir of the process's first run (removed by then).
    if 'visualizer' in cfg:
        cfg.visualizer.name = work_dir
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
    if 'num_classes' in cfg.get('data_preprocessor', {}):  # batch Mixup / CutMix labels
        cfg.data_preprocessor.num_classes = 4
    for name in ('train', 'val', 'test'):
        loader = cfg[f'{name}_dataloader']
        _shrink(loader.dataset.pipeline, sizes)
        _loader(loader, dataset, 4, replace=True)
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    _starting_schedulers(cfg)
    start_from_stock(cfg, data_root)
    return _runtime(cfg, work_dir, by_epoch=True)


def detection(config, data_root, work_dir, start='backbone', lr_scale=1.0):
    """``lr_scale`` scales the learning rate: where the shipped warm-up lasts
    thousands of iterations, its first steps are far smaller than what the
    one-epoch schedule gives them."""
    make_coco(data_root)
    cfg = Config.fromfile(config)
    cfg.optim_wrapper.optimizer.lr *= lr_scale
    sizes = {'Resize': (128, 96), 'Mosaic': MOSAIC_SIZE, 'MixUp': MOSAIC_SIZE}
    dataset = dict(data_root=data_root, ann_file='annotations/instances.json',
                   data_prefix=dict(img='images/'), metainfo=dict(classes=COCO_CLASSES))
    for name in ('train', 'val', 'test'):
        loader = cfg[f'{name}_dataloader']
        _shrink(loader.dataset.pipeline, sizes)
        _loader(loader, dataset, 2)
    for augment in cfg.model.data_preprocessor.get('batch_augments') or []:
        if 'random_size_range' in augment:  # YOLOX's multi-scale training
            augment.random_size_range = (64, 128)
    _starting_schedulers(cfg)
    annotations = os.path.join(data_root, 'annotations/instances.json')
    metric = dict(type='CocoMetric', ann_file=annotations, metric='bbox', format_only=False)
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
    # After the head is shrunk: the whole model's stock checkpoint has its shapes.
    if start == 'backbone':
        start_from_stock(cfg, data_root)
    else:
        start_model_from_stock(cfg, data_root)
    return _runtime(cfg, work_dir, by_epoch=True)


def segmentation(config, data_root, work_dir):
    make_cityscapes(data_root)
    cfg = Config.fromfile(config)
    start_from_stock(cfg, data_root)
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
