_base_ = './repvgg-A0_8xb32-120e_in1k.py'
# Table 4 row: RepVGG-A1.
model = dict(backbone=dict(arch='A1'))
