# The authors' published OREPA-ResNet-50, ImageNet-1k, in mmorepa's train form.
# Weights: python tools/convert_published.py SRC DST --arch resnet50
_base_ = './orepa-resnet18_in1k.py'
model = dict(backbone=dict(depth=50), head=dict(in_channels=2048))
