"""Test-only hook: each rank saves its parameters at the end of training.

Parameters only: under DDP each rank's BatchNorm running statistics come from
its own last batch (DDP re-broadcasts rank 0's buffers at the next forward).
"""
import os

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankWeightsHook(Hook):

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        parameters = {name: p.detach() for name, p in model.named_parameters()}
        torch.save(parameters, os.path.join(runner.work_dir, f'rank{get_rank()}.pth'))
