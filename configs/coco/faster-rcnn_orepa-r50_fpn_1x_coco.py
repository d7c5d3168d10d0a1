_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/orepa_plugin.py']
# Table 5: Faster R-CNN with an OREPA-ResNet-50 backbone. Start from an OREPA
# ImageNet checkpoint in train form: one trained with
# configs/imagenet/orepa-resnet50_8xb32-120e_in1k.py, or a published one
# converted by tools/convert_published.py.
pretrained_backbone = 'checkpoints/orepa-resnet50_in1k.pth'
# The authors advise a learning rate of its own for the linear deep stem.
stem_lr_mult = 1.0
model = dict(
    backbone=dict(
        type='OREPAResNet',
        reparam='orepa',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained_backbone,
                      prefix='backbone.')))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone.conv1.': dict(lr_mult=stem_lr_mult)}))
