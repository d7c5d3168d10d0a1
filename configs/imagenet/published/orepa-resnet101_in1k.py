# The authors' published OREPA-ResNet-101, ImageNet-1k, in mmorepa's train form.
# Weights: python tools/convert_published.py SRC DST --arch resnet101
_base_ = './orepa-resnet50_in1k.py'
model = dict(backbone=dict(depth=101))
