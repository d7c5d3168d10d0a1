_base_ = [
    'mmpretrain::_base_/models/resnet101.py', 'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/default_runtime.py', '../_base_/orepa_imagenet_120e.py',
    '../_base_/orepa_plugin.py'
]
# Table 4 row: ResNet-101, dbb.
model = dict(backbone=dict(type='OREPAResNet', reparam='dbb'))
