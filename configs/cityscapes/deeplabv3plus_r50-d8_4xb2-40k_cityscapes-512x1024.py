_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py'
# Table 5 plain row: mmseg's stock ResNet-50-D8 (no plugin) with the 7x7 stem
# of a ResNet-50 trained by the same ImageNet recipe
# (configs/imagenet/resnet50_8xb32-120e_in1k.py), which it starts from.
model = dict(
    pretrained=None,
    backbone=dict(
        type='ResNet',
        deep_stem=False,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/resnet50_in1k.pth',
                      prefix='backbone.')))
