# The authors' published OREPA-ResNeXt-50 32x4d, ImageNet-1k, in mmorepa's train form.
# Weights: python tools/convert_published.py SRC DST --arch resnext50
_base_ = './orepa-resnet50_in1k.py'
model = dict(backbone=dict(groups=32, width_per_group=4))
