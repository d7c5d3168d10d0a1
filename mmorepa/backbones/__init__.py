"""Backbones built on the layers: drop-ins for the stock ResNet and RepVGG."""
from .orepa_repvgg import OREPARepVGG, squeeze_repvgg_block
from .orepa_resnet import OREPAResNet

__all__ = ['OREPAResNet', 'OREPARepVGG', 'squeeze_repvgg_block']
