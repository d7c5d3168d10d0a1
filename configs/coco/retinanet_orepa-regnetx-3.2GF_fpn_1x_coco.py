_base_ = ['mmdet::regnet/retinanet_regnetx-3.2GF_fpn_1x_coco.py', '../_base_/orepa_plugin.py']
# RetinaNet with mmdet's RegNetX-3.2GF, its convs OREPA layers through conv_cfg.
# Everything else is mmdet's config: the stock ImageNet RegNet checkpoint
# (open-mmlab://regnetx_3.2gf), which every OREPA layer solves itself from so
# that training starts from exactly the stock network, frozen stages, norm_eval.
model = dict(backbone=dict(conv_cfg=dict(type='OREPA')))
