from .deploy_checkpoint_hook import DeployCheckpointHook

__all__ = ['DeployCheckpointHook']
