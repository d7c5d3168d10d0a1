_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/authors_imagenet_recipe.py'
]
# Table 4 row: ResNet-18, plain: mmpretrain's stock ResNet, no plugin.
# PyTorch's default initialization (every BN at gamma = 1, where mmpretrain
# zero-initializes the last BN of each residual block), as in the release.
model = dict(backbone=dict(zero_init_residual=False, init_cfg=[]), head=dict(init_cfg=None))
