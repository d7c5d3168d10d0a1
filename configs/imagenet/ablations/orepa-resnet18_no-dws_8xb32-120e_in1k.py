_base_ = '../orepa-resnet18_8xb32-120e_in1k.py'
# Table 2 ablation on OREPA-ResNet-18: no dws.
model = dict(backbone=dict(branches=('origin', 'avg', 'prior', '1x1_kxk', '1x1')))
