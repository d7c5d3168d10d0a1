"""tools/export_onnx.py: the squeezed ONNX model reproduces the trained one.

Tolerance: onnxruntime against the *unsqueezed* model in eval mode,
``max|onnx - torch| <= 1e-4 x max|torch output|`` (float32), on a 1x3x64x64
input.
"""
import os

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from mmengine.config import Config

from helpers import randomize_norms, randomize_scales
from mmorepa.engine import build_model, deploy_config, save_atomic, squeezed_state_dict
from mmorepa.engine import onnx_export as engine_onnx
from tools import export_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py')
SHAPE = ('--shape', '64', '64')
RELATIVE_TOLERANCE = 1e-4
# Convs of the stock ResNet-18: stem, 8 basic blocks x 2, 3 downsample shortcuts.
RESNET18_CONVS = 1 + 16 + 3


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A random OREPA-ResNet-18 classifier (eval) and its train-form checkpoint."""
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = randomize_scales(randomize_norms(build_model(cfg), generator), generator).eval()
    checkpoint = str(tmp_path_factory.mktemp('checkpoint') / 'orepa-r18.pth')
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), checkpoint)
    return model, cfg, checkpoint


def run_onnx(path, inputs):
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': inputs.numpy()})


def assert_matches(onnx_output: np.ndarray, reference: torch.Tensor):
    assert onnx_output.shape == tuple(reference.shape)
    error = np.abs(onnx_output - reference.numpy()).max()
    scale = reference.abs().max().item()
    assert error <= RELATIVE_TOLERANCE * scale, f'{error:.3e} > 1e-4 x {scale:.3e}'


def test_classifier_export_matches_the_unsqueezed_model(trained, tmp_path, capsys):
    model, _, checkpoint = trained
    output = str(tmp_path / 'model.onnx')
    assert export_onnx.main([CONFIG, checkpoint, output, *SHAPE, '--verify']) == 0
    assert 'verification: onnxruntime vs PyTorch (train form' in capsys.readouterr().out
    graph = onnx.load(output)
    onnx.checker.check_model(graph)
    # Squeezed: one conv per stock conv (the exporter folds each BN into it).
    assert sum(node.op_type == 'Conv' for node in graph.graph.node) == RESNET18_CONVS
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
    (onnx_logits, ) = run_onnx(output, inputs)
    assert_matches(onnx_logits, logits)
    assert not [name for name in os.listdir(tmp_path) if name.startswith('.tmp-')]


def test_backbone_only(trained, tmp_path):
    model, _, checkpoint = trained
    output = str(tmp_path / 'backbone.onnx')
    assert export_onnx.main([CONFIG, checkpoint, output, *SHAPE, '--backbone-only']) == 0
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(inputs)
    onnx_features = run_onnx(output, inputs)
    assert len(onnx_features) == len(features) == 1  # the config's out_indices=(3, )
    assert_matches(onnx_features[0], features[0])


def test_squeezed_checkpoint_with_train_or_deploy_config(trained, tmp_path):
    model, cfg, _ = trained
    squeezed = str(tmp_path / 'orepa-r18_deploy.pth')
    save_atomic(dict(meta={}, state_dict=squeezed_state_dict(model)), squeezed)
    deploy_cfg = str(tmp_path / 'deploy_config.py')
    deploy_config(cfg).dump(deploy_cfg)
    inputs = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
    for config in (CONFIG, deploy_cfg):
        output = str(tmp_path / 'model.onnx')
        assert export_onnx.main([config, squeezed, output, *SHAPE]) == 0
        assert_matches(run_onnx(output, inputs)[0], logits)


def test_verification_failure_exits_non_zero(trained, tmp_path, monkeypatch, capsys):
    _, _, checkpoint = trained
    original = engine_onnx.onnxruntime_outputs

    def perturbed(path, inputs):
        return [output + np.abs(output).max() * 1e-3 for output in original(path, inputs)]

    monkeypatch.setattr(engine_onnx, 'onnxruntime_outputs', perturbed)
    output = str(tmp_path / 'model.onnx')
    assert export_onnx.main([CONFIG, checkpoint, output, *SHAPE, '--verify']) == 1
    assert 'error: verification failed' in capsys.readouterr().err


@pytest.mark.parametrize('arguments, message', [
    (['--shape', '0', '64'], '--shape must be two positive ints'),
    (['--opset', '99'], '--opset must lie in [9, 20]'),
    (['--tolerance', '0'], '--tolerance must be positive'),
])
def test_bad_arguments_are_refused_by_name(trained, tmp_path, capsys, arguments, message):
    _, _, checkpoint = trained
    with pytest.raises(SystemExit) as exit_info:
        export_onnx.main([CONFIG, checkpoint, str(tmp_path / 'model.onnx'), *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_refuses_to_overwrite_the_checkpoint(trained, capsys):
    _, _, checkpoint = trained
    before = os.path.getmtime(checkpoint), os.path.getsize(checkpoint)
    with pytest.raises(SystemExit) as exit_info:
        export_onnx.main([CONFIG, checkpoint, checkpoint])
    assert exit_info.value.code == 2
    assert 'refusing to overwrite' in capsys.readouterr().err
    assert (os.path.getmtime(checkpoint), os.path.getsize(checkpoint)) == before


def test_checkpoint_of_another_architecture_is_refused(trained, tmp_path, capsys):
    model, _, _ = trained
    state_dict = model.state_dict()
    state_dict.pop('head.fc.weight')
    wrong = str(tmp_path / 'wrong.pth')
    torch.save(dict(state_dict=state_dict), wrong)
    assert export_onnx.main([CONFIG, wrong, str(tmp_path / 'model.onnx'), *SHAPE]) == 1
    error = capsys.readouterr().err
    assert 'fits neither the train form nor the squeezed form' in error
    assert '1 missing key(s): head.fc.weight' in error
    assert not os.path.exists(tmp_path / 'model.onnx')
