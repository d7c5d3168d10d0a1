"""The shipped deploy configs (stock backbones, no plugin) load the squeezed
weights of the matching training configs strictly and give the same outputs."""
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import reparameterize
from mmorepa.engine import build_model

PAIRS = {
    'imagenet/orepa-resnet50_8xb32-120e_in1k.py': 'deploy/resnet50_in1k_deploy.py',
    'coco/faster-rcnn_dbb-r50_fpn_1x_coco.py': 'deploy/faster-rcnn_r50_fpn_1x_coco_deploy.py',
    'coco/retinanet_orepa-r50_fpn_1x_coco.py': 'deploy/retinanet_r50_fpn_1x_coco_deploy.py',
    'cityscapes/pspnet_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py':
    'deploy/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024_deploy.py',
    'cityscapes/deeplabv3plus_dbb-r50-d8_4xb2-40k_cityscapes-512x1024.py':
    'deploy/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024_deploy.py',
}


def model_of(path):
    cfg = Config.fromfile(f'configs/{path}')
    cfg.model.backbone.init_cfg = None
    return cfg, revert_sync_batchnorm(build_model(cfg))


@pytest.mark.parametrize('train_config', sorted(PAIRS))
def test_deploy_config_takes_the_squeezed_weights(train_config):
    torch.manual_seed(0)
    _, trained = model_of(train_config)
    deploy_cfg, deployed = model_of(PAIRS[train_config])
    assert 'custom_imports' not in deploy_cfg
    assert deploy_cfg.model.backbone.type == 'ResNet'
    trained = randomize_norms(randomize_scales(trained)).eval()
    deployed.load_state_dict(reparameterize(trained).state_dict(), strict=True)
    deployed.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for ours, stock in zip(trained.backbone(x), deployed.backbone(x)):
            assert_close_to_scale(stock, ours)
