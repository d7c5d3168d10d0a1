_base_ = '../orepa-resnet18_8xb32-120e_in1k.py'
# Table 2 ablation on OREPA-ResNet-18: no linear stem.
model = dict(backbone=dict(linear_stem=False))
