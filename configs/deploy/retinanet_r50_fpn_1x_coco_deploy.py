# Deploy: mmdet's stock RetinaNet R-50-FPN with the squeezed weights of
# configs/coco/retinanet_{orepa,dbb}-r50_fpn_1x_coco.py. No plugin needed.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']
model = dict(backbone=dict(init_cfg=None))
load_from = 'work_dirs/retinanet_orepa-r50_fpn_1x_coco/epoch_12_deploy.pth'
