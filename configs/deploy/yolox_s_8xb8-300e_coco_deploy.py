# Deploy: mmdet's stock YOLOX-S with the squeezed weights of
# configs/coco/yolox_s_orepa_8xb8-300e_coco.py. No plugin needed.
_base_ = ['mmdet::yolox/yolox_s_8xb8-300e_coco.py']
load_from = 'work_dirs/yolox_s_orepa_8xb8-300e_coco/epoch_300_deploy.pth'
