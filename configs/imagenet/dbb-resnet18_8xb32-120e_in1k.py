_base_ = ['./resnet18_8xb32-120e_in1k.py', '../_base_/orepa_plugin.py']
# Table 4 row: ResNet-18, DBB (offline re-parameterization, published layout).
model = dict(backbone=dict(type='OREPAResNet', reparam='dbb'))
