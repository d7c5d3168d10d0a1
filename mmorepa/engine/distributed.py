"""Distributed launch on machines without CUDA."""
import torch
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config) -> None:
    """Start the process group with gloo when a ``pytorch`` launch has no GPU.

    mmengine 0.10's ``pytorch`` launcher calls ``torch.cuda.set_device``
    unconditionally; the Runner skips its own init when a group exists. DDP
    on the CPU takes no device ids. Does nothing with CUDA or another launcher.

    Args:
        cfg (Config): The run's config; ``launcher`` is read and
            ``model_wrapper_cfg`` set.
    """
    if cfg.get('launcher') != 'pytorch' or torch.cuda.is_available():
        return
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group('gloo')
    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None)
