"""Test-only hook: the backbone's outputs on a fixed input, before the first step."""
import os

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

INPUT_SHAPE = (1, 3, 64, 64)


def fixed_input():
    return torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))


@HOOKS.register_module()
class RecordBackboneHook(Hook):
    """Saves ``work_dir/before_train.pth``: the backbone's outputs in eval mode,
    after the Runner initialized the weights and before it trained them."""

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.eval()
        inputs = fixed_input().to(next(model.parameters()).device)
        with torch.no_grad():
            outputs = [out.cpu() for out in model.backbone(inputs)]
        model.train()
        torch.save(outputs, os.path.join(runner.work_dir, 'before_train.pth'))
