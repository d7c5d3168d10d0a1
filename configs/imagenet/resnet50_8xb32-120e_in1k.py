_base_ = './resnet18_8xb32-120e_in1k.py'
# Table 4 row: ResNet-50, plain.
model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
