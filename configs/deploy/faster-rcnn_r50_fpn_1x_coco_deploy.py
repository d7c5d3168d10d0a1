# Deploy: mmdet's stock Faster R-CNN R-50-FPN with the squeezed weights of
# configs/coco/faster-rcnn_{orepa,dbb}-r50_fpn_1x_coco.py. No plugin needed.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']
model = dict(backbone=dict(init_cfg=None))
load_from = 'work_dirs/faster-rcnn_orepa-r50_fpn_1x_coco/epoch_12_deploy.pth'
