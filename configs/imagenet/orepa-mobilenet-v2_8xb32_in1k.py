_base_ = ['mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py', '../_base_/orepa_plugin.py']
# mmpretrain's MobileNetV2 recipe with OREPA layers through conv_cfg. To
# fine-tune from the stock ImageNet weights instead of training from scratch,
# add init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.') to
# the backbone: the layers solve themselves from it exactly.
model = dict(backbone=dict(conv_cfg=dict(type='OREPA')))
