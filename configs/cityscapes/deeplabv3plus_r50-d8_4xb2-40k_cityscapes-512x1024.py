_base_ = './deeplabv3plus_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py'
# Table 5 plain row: ResNet-50 trained by the same ImageNet recipe
# (configs/imagenet/resnet50_8xb32-120e_in1k.py).
model = dict(
    backbone=dict(
        reparam=None,
        init_cfg=dict(checkpoint='checkpoints/resnet50_in1k.pth')))
