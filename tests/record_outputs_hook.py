"""Test-only hook: the backbone's and the model's outputs on a fixed input,
before the first step."""
import os

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mmorepa.engine.deploy import tensor_outputs
from mmorepa.engine.onnx_export import flatten_tensors

INPUT_SHAPE = (1, 3, 64, 64)


def fixed_input():
    return torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))


@HOOKS.register_module()
class RecordBackboneHook(Hook):
    """Saves ``work_dir/before_train.pth``: the backbone's outputs and the
    model's tensor outputs (``dict(backbone=[...], model=[...])``) in eval
    mode, after the Runner initialized or loaded the weights and before it
    trained them."""

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.eval()
        inputs = fixed_input().to(next(model.parameters()).device)
        with torch.no_grad():
            outputs = dict(backbone=[out.cpu() for out in model.backbone(inputs)],
                           model=[out.cpu() for out in
                                  flatten_tensors(tensor_outputs(model, inputs))])
        model.train()
        torch.save(outputs, os.path.join(runner.work_dir, 'before_train.pth'))
