_base_ = '../orepa-resnet18_8xb32-120e_in1k.py'
# Table 3 ablation on OREPA-ResNet-18: scalar scaling.
model = dict(backbone=dict(scaling='scalar'))
