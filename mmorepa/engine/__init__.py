"""Engine pieces on top of the backbones: checkpoint safety, hooks, converters."""
from .checkpoint_safety import allow_openmmlab_checkpoints

__all__ = ['allow_openmmlab_checkpoints']
