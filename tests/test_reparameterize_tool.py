"""tools/reparameterize.py: a trained checkpoint in, a stock-backbone one out;
bad checkpoints give clear errors and nothing is overwritten."""
import hashlib
import importlib.util
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa.engine import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py')
spec = importlib.util.spec_from_file_location('reparameterize_tool',
                                              os.path.join(ROOT, 'tools/reparameterize.py'))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


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


def test_squeezes_into_a_stock_model_with_the_same_outputs(trained, tmp_path):
    model, path = trained
    before = digest(path)
    assert tool.main([CONFIG, path, str(tmp_path / 'out'), '--input-size', '64']) == 0
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
    assert not (tmp_path / 'again').exists()


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'missing'])
def test_unreadable_checkpoints_are_reported(damage, trained, tmp_path):
    path = tmp_path / 'broken.pth'
    if damage == 'garbage':
        path.write_bytes(os.urandom(2048))
    elif damage == 'truncated':
        path.write_bytes(open(trained[1], 'rb').read()[:50_000])
    with pytest.raises(SystemExit, match='not found' if damage == 'missing' else 'cannot read'):
        tool.main([CONFIG, str(path), str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()


def test_wrong_architecture_is_reported(tmp_path):
    other = build_model(Config.fromfile(
        os.path.join(ROOT, 'configs/imagenet/orepa-vgg-A0_8xb32-120e_in1k.py')))
    path = tmp_path / 'vgg.pth'
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(SystemExit, match='does not fit the model'):
        tool.main([CONFIG, str(path), str(tmp_path / 'out')])
    assert not (tmp_path / 'out').exists()
