# The authors' published OREPA-VGG-A2, ImageNet-1k, in mmorepa's train form.
# Weights: python tools/convert_published.py SRC DST --arch repvgg-a2
_base_ = './orepa-repvgg-a0_in1k.py'
model = dict(backbone=dict(arch='A2'), head=dict(in_channels=1408))
