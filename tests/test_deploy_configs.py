"""The shipped deploy configs (stock models, no plugin) load the squeezed
weights of the matching training configs strictly and give the same outputs
(the whole model's tensor forward: backbone, neck and heads)."""
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope

from helpers import assert_close_to_scale, randomize_norms, randomize_scales
from mmorepa import reparameterize
from mmorepa.engine import build_model, reparam_paths
from mmorepa.engine.deploy import tensor_outputs
from mmorepa.engine.onnx_export import flatten_tensors

PAIRS = {
    'imagenet/orepa-resnet50_8xb32-120e_in1k.py': 'deploy/resnet50_in1k_deploy.py',
    'coco/faster-rcnn_dbb-r50_fpn_1x_coco.py': 'deploy/faster-rcnn_r50_fpn_1x_coco_deploy.py',
    'coco/retinanet_orepa-r50_fpn_1x_coco.py': 'deploy/retinanet_r50_fpn_1x_coco_deploy.py',
    'cityscapes/pspnet_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py':
    'deploy/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024_deploy.py',
    'cityscapes/deeplabv3plus_dbb-r50-d8_4xb2-40k_cityscapes-512x1024.py':
    'deploy/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024_deploy.py',
    # Necks and heads too.
    'coco/retinanet_orepa-r50_orepa-fpn-head_1x_coco.py':
    'deploy/retinanet_r50_fpn_1x_coco_deploy.py',
    'coco/yolox_s_orepa_8xb8-300e_coco.py': 'deploy/yolox_s_8xb8-300e_coco_deploy.py',
    'cityscapes/deeplabv3plus_orepa-r50-d8_orepa-head_4xb2-40k_cityscapes-512x1024.py':
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
    assert reparam_paths(deploy_cfg) == []
    trained = randomize_norms(randomize_scales(trained)).eval()
    deployed.load_state_dict(reparameterize(trained).state_dict(), strict=True)
    deployed.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), DefaultScope.overwrite_default_scope(deploy_cfg.default_scope):
        outputs = zip(flatten_tensors(tensor_outputs(trained, x)),
                      flatten_tensors(tensor_outputs(deployed, x)))
        for ours, stock in outputs:
            assert_close_to_scale(stock, ours)
