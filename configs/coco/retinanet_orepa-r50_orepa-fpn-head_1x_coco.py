_base_ = ['./retinanet_orepa-r50_fpn_1x_coco.py']
# The whole detector re-parameterized: the OREPA-ResNet-50 backbone of Table 5,
# and every conv of the FPN and of the head's classification and box towers
# through their conv_cfg (3x3: OREPA blocks, 1x1 laterals: Rep-1x1). The
# head's last convs (retina_cls, retina_reg) are built without conv_cfg and
# stay plain. The export gives mmdet's stock RetinaNet
# (configs/deploy/retinanet_r50_fpn_1x_coco_deploy.py); docs/necks_heads.md.
model = dict(neck=dict(conv_cfg=dict(type='OREPA')), bbox_head=dict(conv_cfg=dict(type='OREPA')))
