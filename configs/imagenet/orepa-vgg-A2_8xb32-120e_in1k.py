_base_ = ['./repvgg-A2_8xb32-120e_in1k.py', '../_base_/orepa_plugin.py']
# Table 4 row: RepVGG-A2, OREPA-VGG.
model = dict(backbone=dict(type='OREPARepVGG', reparam='orepa'))
