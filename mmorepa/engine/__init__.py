"""Engine pieces on top of the backbones: checkpoint safety and I/O, loading a
trained checkpoint of either form, deploy export and its hook, and the
published-checkpoint converter. Everything raises :class:`ReparamError` for
what a user can fix."""
from .checkpoint_io import atomic_output, is_same_file, read_checkpoint, save_atomic
from .checkpoint_safety import allow_openmmlab_checkpoints
from .cli import tool_main
from .configs import (build_model, deploy_config, is_reparam_config, reparam_paths,
                      stock_model_config, weights_only_config)
from .cpu_amp import CPUAmpOptimWrapper
from .deploy import (DEPLOY_CONFIG_NAME, DEPLOY_SUFFIX, INT8_GRID_KEY, DeployExport,
                     export_deploy, relative_difference, squeezed_state_dict)
from .distributed import setup_cpu_distributed
from .errors import ReparamError
from .hooks import DeployCheckpointHook
from .published import convert_published_state_dict
from .trained_model import SQUEEZED, TRAIN_FORM, TrainedModel, load_trained_model

__all__ = [
    'atomic_output', 'is_same_file', 'read_checkpoint', 'save_atomic',
    'allow_openmmlab_checkpoints', 'tool_main', 'CPUAmpOptimWrapper', 'build_model',
    'deploy_config', 'is_reparam_config', 'reparam_paths', 'stock_model_config',
    'weights_only_config',
    'DEPLOY_CONFIG_NAME', 'DEPLOY_SUFFIX', 'INT8_GRID_KEY', 'DeployExport', 'export_deploy',
    'relative_difference', 'squeezed_state_dict', 'setup_cpu_distributed', 'ReparamError',
    'DeployCheckpointHook', 'convert_published_state_dict', 'SQUEEZED', 'TRAIN_FORM',
    'TrainedModel', 'load_trained_model'
]
