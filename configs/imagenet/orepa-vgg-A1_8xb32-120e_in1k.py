_base_ = './orepa-vgg-A0_8xb32-120e_in1k.py'
# Table 4 row: RepVGG-A1, OREPA-VGG.
model = dict(backbone=dict(arch='A1'), head=dict(in_channels=1280))
