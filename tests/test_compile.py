"""``torch.compile(fullgraph=True)`` of re-param backbones: no graph break, and
the same outputs and gradients as eager (relative 1e-9, float64).

float64, and 64x64 inputs: compiled, each folded branch product is scaled and
then added to the kernel; eager adds it scaled in one pass
(``row_scaled_product``). The two round differently, and BatchNorm over a
batch of two small maps in the last stage amplifies rounding (float32, 64x64:
up to 6e-4 in a scale's gradient; float64, 32x32 maps of 1x1: 2e-5).

``aot_eager`` traces forward and backward exactly as inductor would see them,
without spending minutes generating C++ in a unit test.
"""
import pytest
import torch

from helpers import assert_close_to_scale, randomize_scales
from mmorepa import OREPARepVGG, OREPAResNet

BACKBONES = {
    'orepa-resnet18': lambda: OREPAResNet(18, base_channels=8, stem_channels=8),
    'orepa-resnext50':
    lambda: OREPAResNet(50, base_channels=8, stem_channels=8, groups=8, width_per_group=2),
    'dbb-resnet18': lambda: OREPAResNet(18, base_channels=8, stem_channels=8, reparam='dbb'),
    'orepa-vgg-a0': lambda: OREPARepVGG('A0', out_indices=(3, )),
}


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_compiles_without_graph_breaks(name):
    torch.manual_seed(0)
    model = randomize_scales(BACKBONES[name]()).double().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    results = []
    for run in (torch.compile(model, fullgraph=True, backend='aot_eager'), model):
        model.load_state_dict(state)  # the first run moved the norms' statistics
        model.zero_grad()
        outputs = run(x)
        sum((out * out).sum() for out in outputs).backward()
        results.append(([out.detach() for out in outputs],
                        [p.grad.clone() for p in model.parameters()]))
    (compiled_out, compiled_grads), (eager_out, eager_grads) = results
    for compiled, eager in zip(compiled_out + compiled_grads, eager_out + eager_grads):
        assert_close_to_scale(compiled, eager, rel=1e-9)
    model.eval()
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True, backend='aot_eager')(x)
        for ours, eager in zip(compiled, model(x)):
            assert_close_to_scale(ours, eager, rel=1e-9)
