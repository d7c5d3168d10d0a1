_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    '../_base_/orepa_plugin.py'
]
# Table 5: DeepLabV3+ with an OREPA-ResNet-50 backbone (dilations and contracted
# dilation of the stock R-50-D8). The stem is the published OREPA 7x7 linear
# deep stem, not the V1c 3-conv stem, so the OREPA ImageNet checkpoint loads.
pretrained_backbone = 'checkpoints/orepa-resnet50_in1k.pth'
model = dict(
    pretrained=None,
    backbone=dict(
        type='OREPAResNet',
        reparam='orepa',
        deep_stem=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_backbone,
                      prefix='backbone.')))
