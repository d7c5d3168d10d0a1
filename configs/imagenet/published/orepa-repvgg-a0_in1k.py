# The authors' published OREPA-VGG-A0, ImageNet-1k, in mmorepa's train form.
# Weights: python tools/convert_published.py SRC DST --arch repvgg-a0
_base_ = './orepa-resnet18_in1k.py'
model = dict(
    backbone=dict(_delete_=True, type='OREPARepVGG', arch='A0', out_indices=(3, )),
    head=dict(in_channels=1280))
