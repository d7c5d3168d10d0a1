"""Recipes users turn on every day, each in a tiny real Runner run.

- EMA (mmengine's EMAHook) with CPU mixed precision (``--amp`` on a machine
  without a GPU): the deploy checkpoint is the squeeze of what the checkpoint
  holds (the averaged weights), the hook and tools/reparameterize.py write the
  same tensors, and the stock deploy model predicts what the averaged model
  predicts (relative 1e-4, float32).
- mmpretrain's own ``reparameterize_model.py`` and its
  ``--cfg-options model.backbone.deploy=True`` test flow.
- A stock checkpoint of another architecture is refused, with keys named.
"""
import os
import subprocess
import sys

import mmpretrain
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import record_outputs_hook  # noqa: F401  (registers RecordBackboneHook, which tiny_runs adds)
import tiny_runs
from helpers import assert_close_to_scale
from mmorepa.engine import load_trained_model, read_checkpoint, squeezed_state_dict
from tools import reparameterize as reparameterize_tool
from tools.train import build_config, parse_args

CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
MMPRETRAIN_REPARAMETERIZE = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'tools',
                                         'model_converters', 'reparameterize_model.py')


def predictions(model, cfg):
    model.eval()
    batch = next(iter(Runner.build_dataloader(cfg.test_dataloader)))
    with torch.no_grad():
        return torch.stack([s.pred_score for s in model.test_step(batch)])


@pytest.fixture(scope='module')
def ema_run(tmp_path_factory):
    """One epoch of the shipped OREPA-ResNet-18 config with EMAHook, trained
    with ``tools/train.py --amp`` settings, exported by DeployCheckpointHook."""
    root = tmp_path_factory.mktemp('ema')
    cfg = tiny_runs.classification(CONFIG, str(root / 'data'), str(root / 'work'))
    config = str(root / 'tiny.py')
    cfg.dump(config)
    cfg = build_config(parse_args([config, '--amp', '--work-dir', str(root / 'work')]))
    # A slow average, so that it stays far from the live weights.
    cfg.custom_hooks.insert(0, dict(type='EMAHook', momentum=0.01))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, cfg, config, str(root)


@pytest.mark.slow
def test_ema_run_exports_the_averaged_weights(ema_run):
    runner, cfg, config, root = ema_run
    assert type(runner.optim_wrapper).__name__ == 'CPUAmpOptimWrapper'
    checkpoint = os.path.join(cfg.work_dir, 'epoch_1.pth')
    saved = read_checkpoint(checkpoint)
    assert 'ema_state_dict' in saved
    deployed = read_checkpoint(os.path.join(cfg.work_dir, 'epoch_1_deploy.pth'))['state_dict']
    averaged = load_trained_model(cfg, checkpoint)
    expected = squeezed_state_dict(averaged.model)
    assert deployed.keys() == expected.keys()
    assert all(torch.equal(deployed[k], v) for k, v in expected.items())
    # The live weights are not what was exported.
    live = squeezed_state_dict(runner.model)
    assert not torch.allclose(live['backbone.conv1.weight'], deployed['backbone.conv1.weight'])
    # The tool on the same checkpoint writes the same tensors.
    assert reparameterize_tool.main([config, checkpoint, os.path.join(root, 'tool')]) == 0
    by_tool = read_checkpoint(os.path.join(root, 'tool', 'epoch_1_deploy.pth'))['state_dict']
    assert all(torch.equal(by_tool[k], v) for k, v in deployed.items())
    # The stock deploy model predicts what the averaged model predicts.
    deploy_cfg = Config.fromfile(os.path.join(cfg.work_dir, 'deploy_config.py'))
    stock = load_trained_model(deploy_cfg, deploy_cfg.load_from)
    assert stock.form == 'squeezed'
    assert 'mmorepa' not in deploy_cfg.get('custom_imports', {}).get('imports', [])
    assert_close_to_scale(predictions(stock.model, cfg), predictions(averaged.model, cfg),
                          rel=1e-4)


@pytest.mark.slow
def test_mmpretrain_reparameterize_tool_and_deploy_flag(ema_run, tmp_path):
    """mmpretrain's converter calls backbone.switch_to_deploy(); the same config
    with model.backbone.deploy=True then loads and tests the result."""
    _, cfg, config, _ = ema_run
    checkpoint = os.path.join(cfg.work_dir, 'epoch_1.pth')
    converted = str(tmp_path / 'switched.pth')
    # The tiny config imports a hook of the tests' own.
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, MMPRETRAIN_REPARAMETERIZE, config, checkpoint,
                             converted], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    deploy_cfg = Config.fromfile(config)
    deploy_cfg.model.backbone.deploy = True
    deploy_cfg.model.backbone.init_cfg = None
    switched = load_trained_model(deploy_cfg, converted)
    assert not any('branches' in key for key in switched.model.state_dict())
    trained = load_trained_model(cfg, checkpoint)
    assert_close_to_scale(predictions(switched.model, cfg), predictions(trained.model, cfg),
                          rel=1e-4)


@pytest.mark.slow
def test_stock_checkpoint_of_another_architecture_is_refused(tmp_path):
    cfg = tiny_runs.classification('configs/imagenet/orepa-resnet50_8xb32-120e_in1k.py',
                                   str(tmp_path / 'data'), str(tmp_path / 'work'))
    runner = Runner.from_cfg(cfg)  # its init_cfg: a stock ResNet-18 checkpoint
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    assert 'fits neither the train form nor the stock form of OREPAResNet' in message
    assert 'misses' in message and 'layer1.0.conv3.weight' in message
