"""Every layer type and route on fake ``cuda:0`` tensors (tests/fake_cuda.py).

For each route: a training forward under float16 autocast (every re-param
layer's output in float16), two eval forwards (the second through the kernel
cache, which must read no tensor value), and the squeeze into plain convs,
all on ``cuda`` in the expected dtypes. The stock start runs its weight
solvers in float64 on the CPU: the tests follow it on CUDA up to the solve
and check that every value it reads (``torch.linalg`` included) is a CPU
tensor's. Not run here (no values, no fake kernel, or no GPU): the solve
itself, backward, ``torch.compile`` (the ``*-compiled`` benchmark variants)
and the INT8 grid's ``torch.fake_quantize_per_channel_affine``, which the
test follows up to that call; tests/test_cuda.py runs them on a GPU.
"""
import pytest
import torch
from mmengine.runner.checkpoint import load_state_dict
from torch import nn
from torch._subclasses.fake_tensor import (DataDependentOutputException,
                                           DynamicOutputShapeException)

from mmorepa.backbones import OREPAResNet
from mmorepa.benchmark import models
from mmorepa.engine import CPUAmpOptimWrapper
from mmorepa.layers import (DBBConv2d, OREPA1x1Conv2d, OREPAConv2d, OREPALargeConv2d,
                            ReparamConv2d, quantize_kernels, reparameterize)

from device_routes import ROUTES, tensors
from fake_cuda import ValueReads, devices_and_dtypes, fake_cuda, to_fake_cuda

FLOAT32_ON_CUDA = {('cuda', torch.float32)}


def _layer_outputs(model: nn.Module) -> list:
    """Records the dtype and device of every re-param layer's output."""
    seen = []
    for module in model.modules():
        if isinstance(module, ReparamConv2d):
            module.register_forward_hook(
                lambda _, __, out: seen.append((out.device.type, out.dtype)))
    return seen


def check_route_on_fake_cuda(model: nn.Module, shape, mode, squeeze: bool = True) -> None:
    to_fake_cuda(model, mode)
    assert devices_and_dtypes(model) == FLOAT32_ON_CUDA
    layer_outputs = _layer_outputs(model)
    inputs = torch.empty(shape, device='cuda')
    model.train()
    with torch.autocast('cuda', dtype=torch.float16):
        tensors(model(inputs))
    assert layer_outputs and set(layer_outputs) == {('cuda', torch.float16)}
    model.eval()
    with torch.no_grad():
        for _ in range(2):  # the second forward is served by the kernel caches
            outputs = tensors(model(inputs))
            assert {(out.device.type, out.dtype) for out in outputs} == FLOAT32_ON_CUDA
    if not squeeze:
        return
    squeezed = reparameterize(model, inplace=True)
    assert not any(isinstance(m, ReparamConv2d) for m in squeezed.modules())
    assert devices_and_dtypes(squeezed) == FLOAT32_ON_CUDA
    with torch.no_grad():
        outputs = tensors(squeezed(inputs))
    assert {(out.device.type, out.dtype) for out in outputs} == FLOAT32_ON_CUDA


# mmpretrain's RepVGGBlock.switch_to_deploy moves its fused weights with
# `param.data = tensor`, whose device change fake tensors do not follow (real
# ones do): squeezed in tests/test_cuda.py; its OREPA conv is the route above.
SQUEEZED_ON_GPU_ONLY = ('OREPARepVGG-A0', )


@pytest.mark.parametrize('route', list(ROUTES))
def test_route_runs_on_cuda_in_the_expected_dtypes(route, monkeypatch):
    build, shape = ROUTES[route]
    model = build()
    with fake_cuda(monkeypatch) as mode:
        check_route_on_fake_cuda(model, shape, mode, squeeze=route not in SQUEEZED_ON_GPU_ONLY)


def _timed_variants():
    for arch in ('resnet18', 'repvgg-a0', 'mobilenet-v2'):
        for variant in models.variants(arch):
            if not variant.endswith('compiled') and variant != 'plain':
                yield arch, variant


@pytest.mark.parametrize('arch,variant', list(_timed_variants()))
def test_benchmark_variant_runs_on_cuda(arch, variant, monkeypatch):
    """The benchmark builds every variant on the CPU and moves it (the
    reference blocks used to create a CPU tensor in their forward)."""
    model = models.build(arch, variant)
    with fake_cuda(monkeypatch) as mode:
        to_fake_cuda(model, mode)
        inputs = torch.empty(2, models.IN_CHANNELS, 64, 64, device='cuda')
        with torch.autocast('cuda', dtype=models.autocast_dtype(inputs.device)):
            logits = model(inputs)
        assert (logits.device.type, logits.dtype) == ('cuda', torch.float16)
        model.eval()
        with torch.no_grad():
            for _ in range(2):
                assert model(inputs).device.type == 'cuda'
        if not arch.startswith('repvgg'):  # see SQUEEZED_ON_GPU_ONLY
            reparameterize(model, inplace=True)
            assert devices_and_dtypes(model) == FLOAT32_ON_CUDA


# What the fake mode cannot run: the weight solvers' value reads on the CPU.
VALUES_NEEDED = (DataDependentOutputException, DynamicOutputShapeException)


def solver_reads(load) -> list:
    """Runs ``load`` until the solver needs values; returns the value reads."""
    with ValueReads() as recorder, pytest.raises(VALUES_NEEDED):
        load()
    return recorder.reads


@pytest.mark.parametrize('build', [
    lambda: OREPALargeConv2d(3, 16, 7, 2, 3),
    lambda: OREPAConv2d(8, 8, 3, padding=1, branches=('avg', '1x1_kxk')),
    lambda: OREPA1x1Conv2d(8, 16),
    lambda: DBBConv2d(8, 16, 3, padding=1),
], ids=['deep stem', '1x1-kxk without origin', 'Rep-1x1', 'DBB'])
def test_layer_solves_a_stock_kernel_on_the_cpu(build, monkeypatch):
    """The Runner moves the model to the GPU, then loads the stock checkpoint
    (mapped to the CPU): everything up to the solve runs on CUDA, and every
    value the solve reads (``torch.linalg`` included) is on the CPU. The
    solve itself needs values, which fake tensors lack; tests/test_cuda.py
    runs it to the end."""
    layer = build()
    stock = {'weight': torch.randn(layer.kernel_shape)}
    with fake_cuda(monkeypatch) as mode:
        to_fake_cuda(layer, mode)
        reads = solver_reads(lambda: layer.load_state_dict(stock))
    assert reads and all(devices == {'cpu'} for _, devices in reads), reads


def test_orepa_resnet_starts_its_stock_solve_on_the_cpu(monkeypatch):
    """The README's first recipe: OREPAResNet-50 on the GPU loads the stock
    ResNet-50's weights (``load_from`` / ``Pretrained``, mapped to the CPU)."""
    from mmdet.models import ResNet
    stock = ResNet(50).state_dict()
    model = OREPAResNet(50)
    with fake_cuda(monkeypatch) as mode:
        to_fake_cuda(model, mode)
        reads = solver_reads(lambda: load_state_dict(model, stock, strict=True))
    assert reads and all(devices == {'cpu'} for _, devices in reads), reads


def test_cached_forward_reads_no_tensor_value():
    """On real CPU tensors: the second eval forward (kernel from the cache)
    makes no value read, so on a GPU it never waits for the device."""
    layer = OREPAConv2d(8, 8, 3, padding=1).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        layer(x)
        with ValueReads() as recorder:
            layer(x)
    assert recorder.reads == []


def test_int8_grid_meets_its_quantizer_on_cuda(monkeypatch):
    """``quantize_kernels``: everything up to torch's fake-quantize op (which
    has no fake kernel) runs on CUDA, and the op gets CUDA float32 tensors."""
    model = OREPAResNet(18)
    quantize_kernels(model, 'full')
    calls = []

    class ReachedQuantizer(Exception):
        pass

    def fake_quantize(kernel, scales, zero_points, *args):
        calls.append({(t.device.type, t.dtype) for t in (kernel, scales)})
        raise ReachedQuantizer

    monkeypatch.setattr(torch, 'fake_quantize_per_channel_affine', fake_quantize)
    with fake_cuda(monkeypatch) as mode:
        to_fake_cuda(model, mode)
        with pytest.raises(ReachedQuantizer), torch.autocast('cuda', dtype=torch.float16):
            model(torch.empty(2, 3, 64, 64, device='cuda'))
    assert calls == [FLOAT32_ON_CUDA]


def test_cpu_amp_wrapper_refuses_a_cuda_model(monkeypatch):
    """CPU autocast would leave a CUDA model in float32 without a word."""
    model = nn.Conv2d(3, 4, 3)
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with fake_cuda(monkeypatch) as mode:
        to_fake_cuda(model, mode)
        with pytest.raises(ValueError, match="AmpOptimWrapper"):
            with wrapper.optim_context(model):
                pass
