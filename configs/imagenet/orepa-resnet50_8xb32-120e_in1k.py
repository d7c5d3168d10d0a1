_base_ = ['./resnet50_8xb32-120e_in1k.py', '../_base_/orepa_plugin.py']
# Table 4 row: ResNet-50, OREPA.
model = dict(backbone=dict(type='OREPAResNet', reparam='orepa'))
