_base_ = [
    'mmpretrain::_base_/models/repvgg-A0_in1k.py',
    'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/orepa_imagenet_120e.py',
    '../_base_/orepa_plugin.py'
]
# Table 4 row: RepVGG-A1, RepVGG baseline.
model = dict(backbone=dict(type='OREPARepVGG', arch='A1', reparam='repvgg'))
