_base_ = [
    'mmpretrain::_base_/models/repvgg-A0_in1k.py',
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/authors_imagenet_recipe.py'
]
# Table 4 row: RepVGG-A0: mmpretrain's stock RepVGG, no plugin, with PyTorch's
# default initialization, as in the release.
model = dict(backbone=dict(init_cfg=[]), head=dict(init_cfg=None))
