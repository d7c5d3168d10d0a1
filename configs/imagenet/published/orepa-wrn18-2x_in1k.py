# The authors' published OREPA-WideResNet-18-2x, ImageNet-1k, in mmorepa's train
# form. Every width is doubled, the stem's too.
# Weights: python tools/convert_published.py SRC DST --arch wrn18-2x
_base_ = './orepa-resnet18_in1k.py'
model = dict(backbone=dict(stem_channels=128, base_channels=128), head=dict(in_channels=1024))
