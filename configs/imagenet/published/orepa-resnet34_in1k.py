# The authors' published OREPA-ResNet-34, ImageNet-1k, in mmorepa's train form.
# Weights: python tools/convert_published.py SRC DST --arch resnet34
_base_ = './orepa-resnet18_in1k.py'
model = dict(backbone=dict(depth=34))
