_base_ = ['./deeplabv3plus_orepa-r50-d8_4xb2-40k_cityscapes-512x1024.py']
# DeepLabV3+ with OREPA in the backbone (Table 5) and in the whole decode head:
# the ASPP's separable convs and the separable bottleneck are built without
# conv_cfg, so the head is wrapped (OREPAModule: every conv of the module,
# depthwise and 1x1 included). The auxiliary FCN head takes OREPA through its
# conv_cfg. The export gives mmseg's stock DeepLabV3+
# (configs/deploy/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024_deploy.py);
# docs/necks_heads.md.
model = dict(
    decode_head=dict(type='OREPAModule', module_type='DepthwiseSeparableASPPHead'),
    auxiliary_head=dict(conv_cfg=dict(type='OREPA')))
