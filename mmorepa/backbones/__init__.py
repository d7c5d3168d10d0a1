"""Backbones built on the layers: drop-ins for the stock ResNet and RepVGG, and the
wrappers that put OREPA into any registered backbone, neck or head."""
from .orepa_backbone import build_orepa_backbone, build_orepa_module, build_unsqueezed
from .orepa_repvgg import OREPARepVGG, squeeze_repvgg_block
from .orepa_resnet import OREPAResNet, OREPAResNetV1c, OREPAResNetV1d
from .reparam_backbone import ReparamBackbone
from .stock_weights import load_pretrained, load_state_dict_any_form

__all__ = [
    'OREPAResNet', 'OREPAResNetV1c', 'OREPAResNetV1d', 'OREPARepVGG', 'ReparamBackbone',
    'build_orepa_backbone', 'build_orepa_module', 'build_unsqueezed', 'squeeze_repvgg_block',
    'load_pretrained', 'load_state_dict_any_form'
]
