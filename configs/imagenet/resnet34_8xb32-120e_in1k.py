_base_ = './resnet18_8xb32-120e_in1k.py'
# Table 4 row: ResNet-34, plain.
model = dict(backbone=dict(depth=34))
