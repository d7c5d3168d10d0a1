# Deploy: mmseg's stock DeepLabV3+ R-50-D8 with the squeezed weights of
# configs/cityscapes/deeplabv3plus_{orepa,dbb}-r50-d8_4xb2-40k_cityscapes-512x1024.py.
# Those train the OREPA 7x7 stem, so the stock backbone is mmseg's ResNet
# (not ResNetV1c) with the D8 dilations. No plugin needed.
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py']
model = dict(pretrained=None, backbone=dict(type='ResNet', deep_stem=False))
load_from = ('work_dirs/deeplabv3plus_orepa-r50-d8_4xb2-40k_cityscapes-512x1024/'
             'iter_40000_deploy.pth')
