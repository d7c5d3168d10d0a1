_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
# Table 5 plain row: mmdet's stock ResNet-50 (no plugin), started from a
# ResNet-50 trained by the same ImageNet recipe
# (configs/imagenet/resnet50_8xb32-120e_in1k.py).
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50_in1k.pth',
                      prefix='backbone.')))
