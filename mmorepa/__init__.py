"""mmorepa: OREPA (Online Convolutional Re-parameterization) for OpenMMLab.

``import mmorepa`` (or ``custom_imports=dict(imports=['mmorepa'])`` in a
config) registers the layers, backbones and hooks in mmengine's root
registries, which mmpretrain, mmdet and mmseg all fall back to (the
``OREPABackbone`` wrapper among them), and makes
torch's weights-only loader accept OpenMMLab checkpoints.
"""
from .backbones import OREPARepVGG, OREPAResNet, OREPAResNetV1c, OREPAResNetV1d
from .engine import allow_openmmlab_checkpoints
from .layers import reparameterize, unsqueeze
from .version import __version__

allow_openmmlab_checkpoints()

__all__ = [
    'OREPAResNet', 'OREPAResNetV1c', 'OREPAResNetV1d', 'OREPARepVGG', 'reparameterize', 'unsqueeze',
    'allow_openmmlab_checkpoints', '__version__'
]
