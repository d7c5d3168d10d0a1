"""Engine pieces on top of the backbones: checkpoint safety and I/O, deploy
export, hooks and the published-checkpoint converter."""
from .checkpoint_io import (CheckpointError, atomic_output, is_same_file, read_checkpoint,
                            save_atomic)
from .checkpoint_safety import allow_openmmlab_checkpoints
from .converters import PUBLISHED_ARCHS, convert_published_state_dict
from .deploy import (DEPLOY_CONFIG_NAME, DEPLOY_SUFFIX, build_model, deploy_checkpoint,
                     deploy_config, export_deploy, max_output_difference, squeezed_state_dict,
                     verify_deploy_model)
from .distributed import setup_cpu_distributed
from .hooks import DeployCheckpointHook

__all__ = [
    'CheckpointError', 'atomic_output', 'is_same_file', 'read_checkpoint', 'save_atomic',
    'allow_openmmlab_checkpoints', 'PUBLISHED_ARCHS', 'convert_published_state_dict',
    'DEPLOY_CONFIG_NAME', 'DEPLOY_SUFFIX', 'build_model', 'deploy_checkpoint', 'deploy_config',
    'export_deploy', 'max_output_difference',
    'squeezed_state_dict', 'verify_deploy_model', 'setup_cpu_distributed',
    'DeployCheckpointHook'
]
