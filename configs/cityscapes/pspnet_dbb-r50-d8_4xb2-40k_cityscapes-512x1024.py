_base_ = './pspnet_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py'
# Table 5 baseline row: DBB-ResNet-50.
model = dict(
    backbone=dict(
        reparam='dbb',
        init_cfg=dict(checkpoint='checkpoints/dbb-resnet50_in1k.pth')))
