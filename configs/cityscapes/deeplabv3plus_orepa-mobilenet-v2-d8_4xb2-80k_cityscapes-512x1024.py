_base_ = [
    'mmseg::mobilenet_v2/mobilenet-v2-d8_deeplabv3plus_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/orepa_plugin.py'
]
# DeepLabV3+ with mmseg's dilated MobileNetV2, its convs (depthwise 3x3 and
# dense 1x1 alike) OREPA layers through conv_cfg, started exactly from the
# stock ImageNet MobileNetV2 that mmseg's config loads.
model = dict(
    pretrained=None,
    backbone=dict(
        conv_cfg=dict(type='OREPA'),
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')))
