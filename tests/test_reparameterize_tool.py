"""tools/reparameterize.py: a trained checkpoint in, a stock-backbone one out;
bad checkpoints give clear errors and nothing is overwritten."""
import hashlib
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa.engine import build_model
from tools import reparameterize as tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py')


def digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A train-form checkpoint of the config's model with random statistics."""
    torch.manual_seed(0)
    model = randomize_norms(randomize_scales(build_model(Config.fromfile(CONFIG)))).eval()
    path = tmp_path_factory.mktemp('trained') / 'epoch_3.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=3)), path)
    return model, str(path)


def test_squeezes_into_a_stock_model_with_the_same_outputs(trained, tmp_path, capsys):
    model, path = trained
    before = digest(path)
    assert tool.main([CONFIG, path, str(tmp_path / 'out'), '--shape', '64', '48']) == 0
    assert 'max relative difference' in capsys.readouterr().out
    assert digest(path) == before
    deploy_cfg = Config.fromfile(str(tmp_path / 'out' / 'deploy_config.py'))
    assert deploy_cfg.model.backbone.type == 'ResNet' and 'custom_imports' not in deploy_cfg
    stock = build_model(deploy_cfg).eval()
    checkpoint = load_checkpoint(stock, deploy_cfg.load_from, strict=True, logger='silent')
    assert checkpoint['meta']['epoch'] == 3 and 'optimizer' not in checkpoint
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_to_scale(stock(x, mode='tensor'), model(x, mode='tensor'))
    # Squeezing the deploy checkpoint again is a clear no-op.
    assert tool.main([CONFIG, deploy_cfg.load_from, str(tmp_path / 'again')]) == 0
    assert 'already squeezed' in capsys.readouterr().out
    assert not (tmp_path / 'again').exists()


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'missing'])
def test_unreadable_checkpoints_are_reported(damage, trained, tmp_path, capsys):
    path = tmp_path / 'broken.pth'
    if damage == 'garbage':
        path.write_bytes(os.urandom(2048))
    elif damage == 'truncated':
        path.write_bytes(open(trained[1], 'rb').read()[:50_000])
    assert tool.main([CONFIG, str(path), str(tmp_path / 'out')]) == 1
    error = capsys.readouterr().err
    assert error.startswith('error: ') and error.count('\n') == 1
    assert ('not found' if damage == 'missing' else 'cannot read') in error
    assert not (tmp_path / 'out').exists()


def test_wrong_architecture_is_reported(tmp_path, capsys):
    other = build_model(Config.fromfile(
        os.path.join(ROOT, 'configs/imagenet/orepa-vgg-A0_8xb32-120e_in1k.py')))
    path = tmp_path / 'vgg.pth'
    torch.save(dict(state_dict=other.state_dict()), path)
    assert tool.main([CONFIG, str(path), str(tmp_path / 'out')]) == 1
    error = capsys.readouterr().err
    assert 'fits neither the train form nor the squeezed form' in error
    assert 'missing key(s): backbone.bn1.bias' in error
    assert 'unexpected key(s): backbone.stage_1.0.branch_1x1.conv.weight' in error
    assert not (tmp_path / 'out').exists()


def test_output_never_replaces_the_checkpoint(trained, tmp_path, capsys):
    """A deploy file named like the source is refused before anything is written."""
    _, path = trained
    source = tmp_path / 'epoch_3_deploy.pth'
    source.write_bytes(open(path, 'rb').read())
    before = digest(source)
    # OUT_DIR is the source's folder and the source carries the deploy name:
    # exporting epoch_3_deploy.pth would write epoch_3_deploy_deploy.pth, so
    # ask for the same file through a link instead.
    link = tmp_path / 'epoch_3.pth'
    os.symlink(source, link)
    assert tool.main([CONFIG, str(link), str(tmp_path)]) == 1
    assert 'refusing to overwrite' in capsys.readouterr().err
    assert digest(source) == before
