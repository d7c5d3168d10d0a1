_base_ = ['./resnet34_8xb32-120e_in1k.py', '../_base_/orepa_plugin.py']
# Table 4 row: ResNet-34, OREPA.
model = dict(backbone=dict(type='OREPAResNet', reparam='orepa'))
