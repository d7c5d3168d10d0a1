"""The layer types and routes every device test runs: name -> (a builder that
builds on the CPU, the input shape)."""
import torch
from mmengine.registry import MODELS, DefaultScope

from mmorepa.backbones import OREPARepVGG, OREPAResNet
from mmorepa.layers import (DBBConv2d, OREPA1x1Conv2d, OREPAConv2d, OREPALargeConv2d,
                            build_orepa_vgg_conv, unsqueeze)


def _scoped(scope, build):
    def built():
        with DefaultScope.overwrite_default_scope(scope):
            return MODELS.build(build())
    return built


def _torchvision_mobilenet():
    import torchvision
    return unsqueeze(torchvision.models.mobilenet_v3_small(), inplace=True)


ROUTES = {
    'OREPA conv': (lambda: OREPAConv2d(8, 16, 3, padding=1), (2, 8, 12, 12)),
    'OREPA depthwise, stride 2': (lambda: OREPAConv2d(16, 16, 3, 2, 1, groups=16),
                                  (2, 16, 12, 12)),
    'OREPA 5x5, dilation 2': (lambda: OREPAConv2d(8, 8, 5, padding=4, dilation=2),
                              (2, 8, 12, 12)),
    'Rep-1x1': (lambda: OREPA1x1Conv2d(8, 16), (2, 8, 12, 12)),
    'deep stem': (lambda: OREPALargeConv2d(3, 16, 7, 2, 3), (2, 3, 16, 16)),
    'DBB': (lambda: DBBConv2d(8, 16, 3, padding=1), (2, 8, 12, 12)),
    'OREPA-VGG conv': (lambda: build_orepa_vgg_conv(8, 16, 3, padding=1), (2, 8, 12, 12)),
    'OREPAResNet-50': (lambda: OREPAResNet(50), (2, 3, 64, 64)),
    'OREPAResNet-18 DBB': (lambda: OREPAResNet(18, reparam='dbb'), (2, 3, 64, 64)),
    'OREPARepVGG-A0': (lambda: OREPARepVGG('A0'), (2, 3, 64, 64)),
    'conv_cfg RegNet': (_scoped('mmdet', lambda: dict(
        type='RegNet', arch='regnetx_400mf', conv_cfg=dict(type='OREPA'))), (2, 3, 64, 64)),
    'OREPABackbone ConvNeXt': (_scoped('mmpretrain', lambda: dict(
        type='OREPABackbone', backbone=dict(type='ConvNeXt', arch='atto'))), (2, 3, 64, 64)),
    'unsqueeze torchvision': (_torchvision_mobilenet, (2, 3, 64, 64)),
}


def tensors(output):
    """Every tensor of a model's output (a tensor or nested tuples of them)."""
    if isinstance(output, torch.Tensor):
        return [output]
    return [tensor for part in output for tensor in tensors(part)]
