_base_ = './orepa-vgg-A1_8xb32-120e_in1k.py'
# Table 4 row: RepVGG-A1, RepVGG baseline.
model = dict(backbone=dict(reparam='repvgg'))
