_base_ = './orepa-resnet101_8xb32-120e_in1k.py'
# Table 4 row: ResNet-101, DBB (offline re-parameterization).
model = dict(backbone=dict(reparam='dbb'))
