_base_ = ['mmdet::yolox/yolox_s_8xb8-300e_coco.py']
# YOLOX-S with OREPA in CSPDarknet, YOLOXPAFPN and YOLOXHead, all through their
# conv_cfg; everything else (Mosaic / MixUp pipeline, EMA, mode switch) is the
# stock recipe. The export gives mmdet's stock YOLOX-S
# (configs/deploy/yolox_s_8xb8-300e_coco_deploy.py); docs/necks_heads.md.
model = dict(
    backbone=dict(conv_cfg=dict(type='OREPA')),
    neck=dict(conv_cfg=dict(type='OREPA')),
    bbox_head=dict(conv_cfg=dict(type='OREPA')))
custom_imports = dict(imports=['mmorepa'], allow_failed_imports=False)
# The stock recipe's hooks, and the export beside every checkpoint (it
# squeezes the EMA weights, which the checkpoints hold).
custom_hooks = [
    dict(type='YOLOXModeSwitchHook', num_last_epochs={{_base_.num_last_epochs}}, priority=48),
    dict(type='SyncNormHook', priority=48),
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, update_buffers=True,
         priority=49),
    dict(type='DeployCheckpointHook'),
]
