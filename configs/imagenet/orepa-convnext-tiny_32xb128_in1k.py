_base_ = ['mmpretrain::convnext/convnext-tiny_32xb128_in1k.py']
# mmpretrain's ConvNeXt-T recipe (AdamW, EMA, its augmentations) with the
# depthwise 7x7 convs trained as OREPA layers. ConvNeXt builds its convs
# without conv_cfg: the OREPABackbone wrapper builds the stock backbone and
# converts them. Its deploy form is the stock ConvNeXt of the inner config.
custom_imports = dict(imports=['mmorepa'], allow_failed_imports=False)
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL'),  # the base's
    dict(type='DeployCheckpointHook'),
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='OREPABackbone',
        backbone=dict(type='ConvNeXt', arch='tiny', drop_path_rate=0.1)))
