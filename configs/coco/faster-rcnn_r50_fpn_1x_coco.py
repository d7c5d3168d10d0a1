_base_ = './faster-rcnn_orepa-r50_fpn_1x_coco.py'
# Table 5 plain row: ResNet-50 trained by the same ImageNet recipe
# (configs/imagenet/resnet50_8xb32-120e_in1k.py).
model = dict(
    backbone=dict(
        reparam=None,
        init_cfg=dict(checkpoint='checkpoints/resnet50_in1k.pth')))
