"""Engine pieces on top of the backbones: checkpoint safety, deploy export,
hooks and the published-checkpoint converter."""
from .checkpoint_safety import allow_openmmlab_checkpoints
from .deploy import (build_model, deploy_checkpoint, deploy_config, max_output_difference,
                     save_atomic, squeezed_state_dict, verify_deploy_model)
from .hooks import DeployCheckpointHook

__all__ = [
    'allow_openmmlab_checkpoints', 'build_model', 'deploy_checkpoint', 'deploy_config', 'max_output_difference', 'save_atomic',
    'squeezed_state_dict', 'verify_deploy_model', 'DeployCheckpointHook'
]
