"""What the benchmark trains: architectures, their variants, and one training step.

A classification variant is the backbone, global average pooling and a
1000-way linear layer, trained with cross-entropy on random labels by SGD
with momentum. A detection variant is one of mmdet's shipped R-50-FPN
detectors (``frozen_stages=1``), Faster R-CNN or RetinaNet, with its
backbone swapped (``orepa``, ``dbb``) or every conv its config builds through
a ``conv_cfg`` re-parameterized too, in the FPN and the head
(``*-everywhere``), on a fixed 2 x 3 x 512 x 672 batch with ten random boxes.
"""
import inspect
import os
from typing import Callable, Dict, Tuple

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..layers import reparameterize
from .reference import use_reference_blocks

NUM_CLASSES = 1000
IN_CHANNELS = 3
DETECTION_SHAPE = (2, 3, 512, 672)
DETECTION_CONFIGS = {'faster-rcnn-r50': 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                     'retinanet-r50': 'retinanet/retinanet_r50_fpn_1x_coco.py'}
DETECTION_VARIANTS = ('plain', 'dbb', 'orepa', 'orepa-kernel', 'orepa-compiled',
                      'orepa-everywhere', 'dbb-everywhere')

# Variants that force a branch placement; every other OREPA variant trains
# with the default, 'auto' (docs/benchmarks.md, "Branch placement").
PLACEMENT_VARIANTS = {'orepa-kernel': 'kernel', 'orepa-feature': 'feature'}

# mmdet's ResNet detectors freeze the stem and the first stage.
FROZEN_STAGES = 1

# Figure 8 of the paper: cost as OREPA's components are added to ResNet-18
# (Table 2 rows), each against its offline counterpart where one is published.
COMPONENT_ROWS = {
    'online': dict(branches=('origin', 'avg', '1x1_kxk', '1x1'), linear_stem=False),
    '+prior': dict(branches=('origin', 'avg', 'prior', '1x1_kxk', '1x1'), linear_stem=False),
    '+separable': dict(linear_stem=False),
    '+linear stem': dict(),
    '+rep-1x1': dict(rep_1x1=True),
}


def _resnet(depth: int, variant: str) -> nn.Module:
    from mmpretrain.models.backbones import ResNet

    from ..backbones import OREPAResNet
    if variant in ('plain', 'stock'):
        return ResNet(depth, out_indices=(3, ))
    if variant in COMPONENT_ROWS:
        backbone = OREPAResNet(depth, out_indices=(3, ), **COMPONENT_ROWS[variant])
        if not COMPONENT_ROWS[variant].get('linear_stem', True):
            backbone.conv1 = nn.Conv2d(IN_CHANNELS, 64, 7, 2, 3, bias=False)  # a plain stem
        return backbone
    reparam = 'dbb' if variant == 'dbb' else 'orepa'
    backbone = OREPAResNet(depth, reparam=reparam, out_indices=(3, ),
                           frozen_stages=FROZEN_STAGES if variant == 'orepa-frozen' else -1,
                           compile_kernels=variant == 'orepa-compiled',
                           branch_placement=PLACEMENT_VARIANTS.get(variant, 'auto'),
                           kernels_under_autocast=variant != 'orepa-float32-kernels')
    return use_reference_blocks(backbone) if variant == 'orepa-reference' else backbone


# Which convs unsqueeze converts in each OREPA variant of the other backbones:
# all kinds (the default), all but the dense 1x1 convs (Rep-1x1), dense k x k only.
UNSQUEEZE_ROWS = {
    'orepa': dict(),
    'orepa-no-1x1': dict(convs=('kxk', 'grouped', 'depthwise')),
    'orepa-dense-kxk': dict(convs=('kxk', )),
}


def _unsqueezed(build_stock: Callable[[], nn.Module], variant: str) -> nn.Module:
    """A stock backbone (``plain``) or the same with OREPA layers (:func:`unsqueeze`)."""
    from ..layers import unsqueeze
    backbone = build_stock()
    if variant in ('plain', 'stock'):
        return backbone
    return unsqueeze(backbone, inplace=True, **UNSQUEEZE_ROWS[variant])


def _regnet(arch: str) -> nn.Module:
    from mmdet.models.backbones import RegNet
    return RegNet(arch, out_indices=(3, ))


def _mobilenet_v2() -> nn.Module:
    from mmpretrain.models.backbones import MobileNetV2
    return MobileNetV2(out_indices=(7, ))


def _repvgg(arch: str, variant: str) -> nn.Module:
    from mmpretrain.models.backbones import RepVGG

    from ..backbones import OREPARepVGG
    if variant in ('plain', 'stock'):
        # The deploy form: one 3x3 conv with bias + ReLU per block, a plain VGG.
        return RepVGG(arch, deploy=True)
    if variant == 'repvgg':
        return RepVGG(arch)
    backbone = OREPARepVGG(arch, compile_kernels=variant == 'orepa-vgg-compiled')
    return use_reference_blocks(backbone) if variant == 'orepa-vgg-reference' else backbone


# Architecture -> (backbone builder, variants; the first is the reference of ratios).
# orepa-float32-kernels: with --amp, kernels generated in float32 (the default
# generates them under the autocast). orepa-frozen: the stem and first stage
# frozen, as mmdet's detectors train (their kernels come from the cache).
RESNET_VARIANTS = ('plain', 'dbb', 'orepa', 'orepa-kernel', 'orepa-feature', 'orepa-reference',
                   'orepa-compiled', 'orepa-float32-kernels', 'orepa-frozen')
VGG_VARIANTS = ('plain', 'repvgg', 'orepa-vgg', 'orepa-vgg-reference', 'orepa-vgg-compiled')
ARCHS: Dict[str, Tuple[Callable[[str], nn.Module], Tuple[str, ...]]] = {
    'resnet18': (lambda variant: _resnet(18, variant), RESNET_VARIANTS),
    'resnet34': (lambda variant: _resnet(34, variant), RESNET_VARIANTS),
    'resnet50': (lambda variant: _resnet(50, variant), RESNET_VARIANTS),
    'resnet101': (lambda variant: _resnet(101, variant), RESNET_VARIANTS),
    'repvgg-a0': (lambda variant: _repvgg('A0', variant), VGG_VARIANTS),
    'repvgg-a1': (lambda variant: _repvgg('A1', variant), VGG_VARIANTS),
    'repvgg-a2': (lambda variant: _repvgg('A2', variant), VGG_VARIANTS),
    'resnet18-components': (lambda variant: _resnet(18, variant),
                            ('plain', 'dbb', *COMPONENT_ROWS)),
    'faster-rcnn-r50': (None, DETECTION_VARIANTS),
    'retinanet-r50': (None, DETECTION_VARIANTS),
    'regnetx-400mf': (lambda variant: _unsqueezed(lambda: _regnet('regnetx_400mf'), variant),
                      ('plain', *UNSQUEEZE_ROWS)),
    'mobilenet-v2': (lambda variant: _unsqueezed(_mobilenet_v2, variant),
                     ('plain', *UNSQUEEZE_ROWS)),
}
# Variants whose kernel generation is timed on its own (the floor of the cost).
KERNEL_TIMED = ('orepa', 'orepa-compiled', 'orepa-float32-kernels', 'orepa-frozen', 'orepa-vgg',
                'orepa-vgg-compiled', 'orepa-no-1x1', 'orepa-dense-kxk')
# The variant whose squeezed form is timed at inference against the stock network.
DEPLOYED = {'resnet18': 'orepa', 'resnet34': 'orepa', 'resnet50': 'orepa',
            'resnet101': 'orepa', 'repvgg-a0': 'orepa-vgg', 'repvgg-a1': 'orepa-vgg',
            'repvgg-a2': 'orepa-vgg', 'regnetx-400mf': 'orepa', 'mobilenet-v2': 'orepa'}


# The inference job's name for the train-form model in eval mode, its kernels cached.
CACHED = 'train form, cached'

# Offline re-param variants: every branch runs on the feature maps.
OFFLINE = ('dbb', 'repvgg', 'dbb-everywhere')


def variants(arch: str) -> Tuple[str, ...]:
    return ARCHS[arch][1]


def is_offline(variant: str) -> bool:
    return variant in OFFLINE


def input_shape(arch: str, batch: int, size: int) -> Tuple[int, ...]:
    """The training input of ``arch``: the detector's fixed batch
    (``DETECTION_SHAPE``, whatever ``batch`` and ``size`` say), else
    ``batch x 3 x size x size``."""
    return DETECTION_SHAPE if ARCHS[arch][0] is None else (batch, IN_CHANNELS, size, size)


class Classifier(nn.Module):
    """Backbone, global average pooling and a linear layer.

    Args:
        backbone (nn.Module): An OpenMMLab backbone returning a tuple of
            feature maps; the last one is classified.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        with torch.no_grad():
            # Eval mode keeps the BatchNorm statistics untouched.
            backbone.eval()
            channels = backbone(torch.zeros(1, IN_CHANNELS, 32, 32))[-1].shape[1]
            backbone.train()
        self.fc = nn.Linear(channels, NUM_CLASSES)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(inputs)[-1].mean(dim=(2, 3)))


def _detector(arch: str, variant: str) -> nn.Module:
    """Every variant starts as the same detector (the re-param layers from the
    stock one's weights, exactly): a detector's heads cost what its proposals
    make them cost, so the variants must propose alike."""
    import mmdet
    from mmengine.config import Config

    from ..backbones import load_state_dict_any_form
    from ..engine import build_model
    cfg = Config.fromfile(os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs',
                                       DETECTION_CONFIGS[arch]))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    plain = build_model(cfg)
    plain.init_weights()
    if variant == 'plain':
        return plain
    reparam = 'dbb' if variant.startswith('dbb') else 'orepa'
    cfg.model.backbone.update(type='OREPAResNet', reparam=reparam,
                              compile_kernels=variant == 'orepa-compiled')
    if reparam == 'orepa':
        cfg.model.backbone.branch_placement = PLACEMENT_VARIANTS.get(variant, 'auto')
    if variant.endswith('-everywhere'):
        _reparam_conv_cfgs(cfg.model, dict(type=reparam.upper()))
    model = build_model(cfg)
    for name, part in model.named_children():
        weights = {key[len(name) + 1:]: value for key, value in plain.state_dict().items()
                   if key.startswith(f'{name}.')}
        if name == 'backbone':
            load_state_dict_any_form(part, weights)
        else:  # the detectors must not differ outside the backbone
            part.load_state_dict(weights, strict=True)
    return model


def _reparam_conv_cfgs(model_cfg, conv_cfg: dict) -> None:
    """Set ``conv_cfg`` on every part of a detector config (neck, heads) whose
    class takes one (RetinaNet's head does, an RPN head does not)."""
    from mmdet.registry import MODELS
    for name, part in model_cfg.items():
        if name == 'backbone' or not isinstance(part, dict) or 'type' not in part:
            continue
        kind = MODELS.get(part['type'])
        if 'conv_cfg' in inspect.signature(kind).parameters:
            part.conv_cfg = conv_cfg


def build(arch: str, variant: str) -> nn.Module:
    """The model of ``arch`` in ``variant``, in train mode."""
    builder, known = ARCHS[arch]
    if variant not in known and variant != 'stock':
        raise ValueError(f'variant for {arch} must be one of {known}, got {variant!r}')
    if builder is None:
        return _detector(arch, variant).train()
    return Classifier(builder(variant)).train()


def count_params(model: nn.Module) -> int:
    return sum(param.numel() for param in model.parameters())


def deployed_params(model: nn.Module) -> int:
    """Parameters of the squeezed model (a copy); stock RepVGG switches itself."""
    squeezed = reparameterize(model.eval())
    backbone = getattr(squeezed, 'backbone', None)
    if hasattr(backbone, 'switch_to_deploy'):  # mmpretrain's convention
        backbone.switch_to_deploy()
    return count_params(squeezed)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The benchmark's AMP dtype: float16 on a GPU (with loss scaling, as
    mmengine's ``AmpOptimWrapper`` trains), bfloat16 on the CPU."""
    return torch.bfloat16 if device.type == 'cpu' else torch.float16


def optim_wrapper(model: nn.Module, device: torch.device, amp: bool = False) -> OptimWrapper:
    """SGD (momentum 0.9, weight decay 1e-4) in the mmengine optimizer wrapper a
    Runner would use: ``OptimWrapper``; with ``amp`` on a GPU ``AmpOptimWrapper``
    (float16 autocast, dynamic loss scaling), on the CPU ``CPUAmpOptimWrapper``
    (bfloat16 autocast)."""
    from mmengine.optim import AmpOptimWrapper

    from ..engine import CPUAmpOptimWrapper
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    if not amp:
        return OptimWrapper(optimizer)
    if device.type == 'cpu':
        return CPUAmpOptimWrapper(dtype='bfloat16', optimizer=optimizer)
    return AmpOptimWrapper(dtype='float16', optimizer=optimizer)


def training_step(model: nn.Module, batch_size: int, size: int, device: torch.device,
                  amp: bool = False, channels_last: bool = False) -> Callable[[], None]:
    """One forward + backward + SGD update as a Runner's train step makes it
    (:func:`optim_wrapper`), as a closure over a fixed random batch."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    wrapper = optim_wrapper(model, device, amp)
    loss_of = _detection_loss(model, device) if not isinstance(model, Classifier) else \
        _classification_loss(model, batch_size, size, device, channels_last)

    def step() -> None:
        with wrapper.optim_context(model):
            loss = loss_of()
        wrapper.update_params(loss)

    return step


def _classification_loss(model, batch_size, size, device, channels_last):
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch_size, IN_CHANNELS, size, size, generator=generator).to(device)
    if channels_last:
        inputs = inputs.to(memory_format=torch.channels_last)
    labels = torch.randint(NUM_CLASSES, (batch_size, ), generator=generator).to(device)
    return lambda: nn.functional.cross_entropy(model(inputs), labels)


def _detection_loss(model, device):
    from mmdet.testing import demo_mm_inputs
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    batch = demo_mm_inputs(batch_size=DETECTION_SHAPE[0], image_shapes=[DETECTION_SHAPE[1:]] *
                           DETECTION_SHAPE[0], num_items=[10] * DETECTION_SHAPE[0],
                           num_classes=80)
    with DefaultScope.overwrite_default_scope('mmdet'):
        data = model.data_preprocessor(batch, True)
    inputs = data['inputs'].to(device)
    samples = [sample.to(device) for sample in data['data_samples']]

    def loss():
        with DefaultScope.overwrite_default_scope('mmdet'):
            losses = model.loss(inputs, samples)
        return model.parse_losses(losses)[0]

    return loss
