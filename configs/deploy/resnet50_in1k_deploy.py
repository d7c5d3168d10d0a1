# Deploy: mmpretrain's stock ResNet-50 classifier with the squeezed weights of
# an OREPA / DBB ResNet-50 (configs/imagenet/{orepa,dbb}-resnet50_8xb32-120e_in1k.py).
# No plugin needed. The squeezed checkpoint is written by DeployCheckpointHook
# (or tools/reparameterize.py); point load_from at it, e.g.
#   python tools/test.py configs/deploy/resnet50_in1k_deploy.py CKPT_deploy.pth
_base_ = ['mmpretrain::resnet/resnet50_8xb32_in1k.py']
load_from = 'work_dirs/orepa-resnet50_8xb32-120e_in1k/epoch_120_deploy.pth'
