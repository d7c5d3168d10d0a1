_base_ = './orepa-vgg-A0_8xb32-120e_in1k.py'
# Table 4 row: RepVGG-A2, OREPA-VGG.
model = dict(backbone=dict(arch='A2'), head=dict(in_channels=1408))
