"""The CUDA tier: ``pytest -m cuda``, on a machine with a GPU (skipped without).

The routes of tests/test_fake_cuda.py on real CUDA tensors with backward, the
stock start on CUDA against the CPU start, ``unsqueeze`` of a CUDA model, fp16
steps through mmengine's ``AmpOptimWrapper`` (loss scaling), the benchmark's variants (compiled ones
included), ``torch.compile`` of a whole backbone, a tiny Runner run, and
two-GPU DDP where two GPUs are present. ``tools/gpu_check.py`` runs this tier
first. Float32 comparisons run with TF32 off (it rounds products to 10 bits).
"""
import copy
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import AmpOptimWrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict

import tiny_runs
from device_routes import ROUTES, tensors
from helpers import assert_close_to_scale, randomize_scales
from mmorepa.backbones import OREPAResNet
from mmorepa.benchmark import models
from mmorepa.benchmark.measure import kernel_generation
from mmorepa.layers import reparameterize, unsqueeze
from tools.train import build_config, parse_args

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]

# The stock start: as on the CPU (tests/test_other_backbones.py).
START_FLOAT32 = 1e-5


@pytest.fixture(autouse=True)
def true_float32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize('route', list(ROUTES))
def test_route_trains_in_fp16_and_squeezes_on_cuda(route):
    build, shape = ROUTES[route]
    torch.manual_seed(0)
    model = randomize_scales(build()).cuda().train()
    inputs = torch.randn(shape, device='cuda')
    scaler = torch.amp.GradScaler('cuda')
    with torch.autocast('cuda', dtype=torch.float16):
        loss = sum(out.float().square().mean() for out in tensors(model(inputs)))
    scaler.scale(loss).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.is_cuda and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        first = tensors(model(inputs))
        cached = tensors(model(inputs))
        squeezed = tensors(reparameterize(model)(inputs))
    for ours, again, plain in zip(first, cached, squeezed):
        assert ours.is_cuda and ours.dtype == torch.float32
        assert torch.equal(ours, again)
        assert_close_to_scale(plain, ours, rel=1e-4)


def test_stock_start_on_cuda_equals_the_cpu_start():
    """The Runner's order: the model on the GPU, then the stock checkpoint
    (mapped to the CPU) loaded into it; the solve runs on the CPU either way."""
    from mmdet.models import ResNet
    torch.manual_seed(0)
    stock = ResNet(50).eval()
    torch.manual_seed(1)
    on_cpu = OREPAResNet(50)
    on_cuda = copy.deepcopy(on_cpu).cuda()
    load_state_dict(on_cpu, stock.state_dict(), strict=True)
    load_state_dict(on_cuda, stock.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = stock(x)
        from_cpu, from_cuda = on_cpu.eval()(x), on_cuda.eval()(x.cuda())
    for wanted, cpu, cuda in zip(expected, from_cpu, from_cuda):
        assert_close_to_scale(cpu, wanted, rel=START_FLOAT32)
        assert_close_to_scale(cuda.cpu(), wanted, rel=START_FLOAT32)


def test_unsqueeze_of_a_cuda_model_starts_as_that_model():
    """A model already on the GPU, 7x7 stem included: each layer solves its
    stock conv on the CPU and lives on the GPU."""
    import torchvision
    torch.manual_seed(0)
    stock = torchvision.models.resnet18().cuda().eval()
    model = unsqueeze(copy.deepcopy(stock), inplace=True)
    assert all(p.is_cuda for p in model.parameters())
    x = torch.randn(2, 3, 64, 64, device='cuda')
    with torch.no_grad():
        assert_close_to_scale(model(x), stock(x), rel=1e-4)


def test_fp16_steps_through_amp_optim_wrapper():
    torch.manual_seed(0)
    model = models.Classifier(OREPAResNet(18)).cuda().train()
    wrapper = AmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(
        model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4))
    inputs = torch.randn(8, 3, 64, 64, device='cuda')
    labels = torch.randint(models.NUM_CLASSES, (8, ), device='cuda')
    losses = []
    for _ in range(10):  # the first steps may be skipped while the loss scale settles
        with wrapper.optim_context(model):
            loss = F.cross_entropy(model(inputs), labels)
        wrapper.update_params(loss)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize('arch', ['resnet18', 'repvgg-a0', 'mobilenet-v2'])
def test_benchmark_variants_step_on_cuda(arch):
    device = torch.device('cuda')
    for variant in models.variants(arch):
        model = models.build(arch, variant)
        step = models.training_step(model, 4, 64, device, amp=True)
        for _ in range(2):
            step()
        if variant in models.KERNEL_TIMED:
            times = kernel_generation(model, 2, device, models.autocast_dtype(device))
            assert times['kernels'] > 0
        assert models.deployed_params(model) <= models.count_params(model)


def test_compiled_backbone_matches_eager_on_cuda():
    torch.manual_seed(0)
    model = randomize_scales(OREPAResNet(18)).cuda().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 64, 64, device='cuda')
    results = []
    for run in (torch.compile(model, fullgraph=True), model):
        model.load_state_dict(state)
        model.zero_grad()
        outputs = run(x)
        sum((out * out).sum() for out in outputs).backward()
        results.append([out.detach() for out in outputs] +
                       [p.grad.clone() for p in model.parameters()])
    for compiled, eager in zip(*results):
        assert_close_to_scale(compiled, eager, rel=1e-4)


@pytest.mark.slow
def test_tiny_runner_run_on_cuda_with_amp(tmp_path):
    cfg = tiny_runs.classification('configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py',
                                   str(tmp_path / 'data'), str(tmp_path / 'work'))
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    cfg = build_config(parse_args([config, '--amp', '--work-dir', str(tmp_path / 'work')]))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert next(runner.model.parameters()).is_cuda
    assert os.path.exists(os.path.join(cfg.work_dir, 'epoch_1_deploy.pth'))


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs two GPUs')
def test_two_gpus_end_with_equal_weights(tmp_path):
    from test_distributed import test_two_processes_end_with_equal_weights_and_resume
    test_two_processes_end_with_equal_weights_and_resume(tmp_path)
