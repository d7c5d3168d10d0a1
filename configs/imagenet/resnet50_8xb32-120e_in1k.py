_base_ = './orepa-resnet50_8xb32-120e_in1k.py'
# Table 4 row: ResNet-50, plain.
model = dict(backbone=dict(reparam=None))
