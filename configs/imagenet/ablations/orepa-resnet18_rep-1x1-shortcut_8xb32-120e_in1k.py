_base_ = '../orepa-resnet18_8xb32-120e_in1k.py'
# Table 2 ablation on OREPA-ResNet-18: rep 1x1 shortcut.
model = dict(backbone=dict(rep_1x1=True))
