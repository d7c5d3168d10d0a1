_base_ = './retinanet_orepa-r50_fpn_1x_coco.py'
# Table 5 baseline row: DBB-ResNet-50 (offline re-parameterization).
model = dict(
    backbone=dict(
        reparam='dbb',
        init_cfg=dict(checkpoint='checkpoints/dbb-resnet50_in1k.pth')))
