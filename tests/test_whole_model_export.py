"""Re-param layers anywhere in a detector or segmentor (backbone, neck, heads,
auxiliary heads) are exported to the stock model: the deploy config names no
re-param type and no plugin, the stock model loads the squeezed checkpoint
strictly, and its outputs are the trained model's.

Tolerances (max error / max output, tensor forward of the whole model):
float32 1e-4, float64 1e-9, on random weights, branch scales and BatchNorm
statistics.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from helpers import randomize_norms, randomize_scales
from mmorepa.engine import (DEPLOY_CONFIG_NAME, ReparamError, build_model, deploy_config,
                            export_deploy, is_reparam_config, read_checkpoint, reparam_paths,
                            squeezed_state_dict)
from mmorepa.engine.deploy import relative_difference, tensor_outputs
from mmorepa.layers import OREPAConv2d, Squeezable
from tools.analysis import backbone_matrix

RETINANET = 'configs/coco/retinanet_orepa-r50_fpn_1x_coco.py'
SEGMENTOR = 'configs/cityscapes/pspnet_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py'
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}
OREPA = dict(type='OREPA')


def retinanet(backbone_type='OREPAResNet', neck=True, head=True):
    """RetinaNet R-18 with OREPA where asked (the issue's two detectors)."""
    cfg = Config.fromfile(RETINANET)
    cfg.model.backbone.update(type=backbone_type, depth=18, init_cfg=None)
    cfg.model.backbone.pop('reparam') if backbone_type == 'ResNet' else None
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    if neck:
        cfg.model.neck.conv_cfg = OREPA
    if head:
        cfg.model.bbox_head.conv_cfg = OREPA
    cfg.optim_wrapper.paramwise_cfg = None
    return cfg


def trained_checkpoint(cfg, path, seed=0):
    """A checkpoint of ``cfg``'s model with random weights, branch scales and
    BatchNorm statistics, as training leaves it."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = randomize_scales(randomize_norms(build_model(cfg), generator), generator)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def inputs(channels=3, size=64, dtype=torch.float32):
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(1),
                       dtype=dtype)


def names_no_reparam(cfg):
    text = cfg.pretty_text
    for name in ('OREPA', 'DBB', 'mmorepa'):
        assert name not in text, name


@pytest.mark.parametrize('backbone', ['OREPAResNet', 'ResNet'])
def test_neck_and_head_are_exported(backbone, tmp_path):
    cfg = retinanet(backbone)
    assert reparam_paths(cfg)[-2:] == ['model.neck.conv_cfg', 'model.bbox_head.conv_cfg']
    checkpoint = trained_checkpoint(cfg, str(tmp_path / 'epoch_1.pth'))
    export = export_deploy(cfg, checkpoint, str(tmp_path))
    assert export is not None, 'a train-form checkpoint was called squeezed'
    deployed_cfg = Config.fromfile(str(tmp_path / DEPLOY_CONFIG_NAME))
    names_no_reparam(deployed_cfg)
    assert deployed_cfg.model.neck.conv_cfg is None
    stock = build_model(deployed_cfg)
    assert not any(isinstance(m, Squeezable) for m in stock.modules())
    stock.load_state_dict(read_checkpoint(export.checkpoint)['state_dict'], strict=True)
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert export.difference(inputs()) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_whole_detector_squeezes_exactly(dtype):
    cfg = retinanet()
    torch.manual_seed(0)
    model = randomize_scales(randomize_norms(build_model(cfg))).to(dtype).eval()
    stock = build_model(deploy_config(cfg)).to(dtype).eval()
    stock.load_state_dict(squeezed_state_dict(model), strict=True)
    x = inputs(dtype=dtype)
    with torch.no_grad(), DefaultScope.overwrite_default_scope('mmdet'):
        error = relative_difference(tensor_outputs(model, x), tensor_outputs(stock, x))
    assert error <= TOLERANCE[dtype]


def test_segmentor_auxiliary_heads_and_a_wrapped_head(tmp_path):
    """mmseg's list of auxiliary heads, and a head whose convs no conv_cfg
    builds (OREPAModule), deploy back to the stock heads."""
    cfg = Config.fromfile(SEGMENTOR)
    cfg.model.backbone.update(depth=18, init_cfg=None)
    cfg.model.decode_head.update(in_channels=512, channels=32)
    aux = dict(cfg.model.auxiliary_head, in_channels=256, channels=16, conv_cfg=OREPA)
    cfg.model.auxiliary_head = [aux, dict(aux, type='OREPAModule', module_type='FCNHead',
                                          conv_cfg=None)]
    cfg.model.decode_head.update(type='OREPAModule', module_type='PSPHead')
    assert reparam_paths(cfg) == ['model.backbone', 'model.decode_head',
                                  'model.auxiliary_head[0].conv_cfg', 'model.auxiliary_head[1]']
    checkpoint = trained_checkpoint(cfg, str(tmp_path / 'iter_2.pth'))
    export = export_deploy(cfg, checkpoint, str(tmp_path))
    deployed_cfg = Config.fromfile(export.config)
    names_no_reparam(deployed_cfg)
    assert deployed_cfg.model.decode_head.type == 'PSPHead'
    assert [head.type for head in deployed_cfg.model.auxiliary_head] == ['FCNHead', 'FCNHead']
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert export.difference(inputs()) <= TOLERANCE[torch.float32]


def test_a_config_without_reparam_layers_is_refused(tmp_path):
    cfg = retinanet('ResNet', neck=False, head=False)
    assert not is_reparam_config(cfg)
    checkpoint = trained_checkpoint(cfg, str(tmp_path / 'epoch_1.pth'))
    with pytest.raises(ReparamError, match='trains no re-param layers'):
        export_deploy(cfg, checkpoint, str(tmp_path))
    assert list(tmp_path.iterdir()) == [tmp_path / 'epoch_1.pth']


def test_reparam_layers_no_config_node_names_are_an_error(tmp_path):
    """A module that builds OREPA layers by itself cannot be deployed by a
    config: the export names the modules instead of leaving them out."""
    from mmdet.models.necks import FPN
    from mmdet.registry import MODELS

    @MODELS.register_module(force=True)
    class HiddenOREPANeck(FPN):

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.fpn_convs[0].conv = OREPAConv2d(256, 256, 3, padding=1, bias=True)

    cfg = retinanet(neck=False, head=False)
    cfg.model.neck.type = 'HiddenOREPANeck'
    checkpoint = trained_checkpoint(cfg, str(tmp_path / 'epoch_1.pth'))
    with pytest.raises(ReparamError, match=r'neck\.fpn_convs\.0\.conv'):
        export_deploy(cfg, checkpoint, str(tmp_path))
    assert not (tmp_path / 'epoch_1_deploy.pth').exists()
    no_node = copy.deepcopy(cfg)
    no_node.model.backbone = dict(no_node.model.backbone, type='ResNet')
    no_node.model.backbone.pop('reparam')
    with pytest.raises(ReparamError, match=r'neck\.fpn_convs\.0\.conv'):
        export_deploy(no_node, trained_checkpoint(no_node, str(tmp_path / 'b.pth')),
                      str(tmp_path))


@pytest.mark.parametrize('name', sorted(backbone_matrix.NECKS_HEADS))
def test_neck_or_head_starts_stock_and_squeezes_into_it(name):
    """Each neck and head of docs/necks_heads.md, float64: started from a stock
    checkpoint it computes the stock module, and squeezed (branches moved) it
    loads strictly into the deploy config's stock module, equal outputs."""
    result = backbone_matrix.check(name, (64, 64), torch.float64)
    assert result.converted >= 1
    assert result.start_error <= TOLERANCE[torch.float64]
    assert result.squeeze_error <= TOLERANCE[torch.float64]
