"""Training cost of re-param variants: step time and peak memory (the paper's Figure 8).

    python tools/analysis/benchmark_training.py --archs resnet18 resnet50 repvgg-a0 \
        --batch 32 --size 224 --steps 5 --warmup 2 --repeats 2 \
        --out work_dirs/benchmark --device cpu

Per architecture the variants are, for ``resnet*``: ``plain``, ``dbb``,
``orepa``; for ``repvgg-*``: ``plain`` (RepVGG's deploy form trained as a
plain VGG), ``repvgg``, ``orepa-vgg``. Each model is the backbone, global
average pooling and a 1000-way linear layer, trained with cross-entropy on
random labels by SGD with momentum.

A training step is forward + backward + optimizer step; its time is the
median of ``--steps`` steps after ``--warmup`` steps. Peak memory is, on a
GPU, ``torch.cuda.max_memory_allocated`` over the timed steps; on the CPU,
the process's peak resident size (``ru_maxrss``), which includes the
interpreter and the imported libraries (the same for every variant; the
JSON records the size before the model was built). Every training variant
runs in a fresh process (this script with ``--worker``), the variants interleaved
over ``--repeats`` rounds (A B C A B C); the summary takes medians over the
rounds and gives ratios to the plain network.

For the OREPA variants the worker also times, after the steps, where their
extra cost comes from: generating every layer's kernel (forward + backward,
no feature maps) and, within it, the branches that are real matrix products
alone (1x1-kxk, and Rep-1x1's chain of two 1x1 kernels), which no ordering of
the work can avoid. Both are quoted as a share of the plain network's step.

Also measured, in the same rounds: inference throughput (images/s, eval,
``no_grad``) of the squeezed OREPA model against the stock plain network of
the same architecture. These two share one process and alternate batch by
batch: their networks are identical, and timed in separate processes the same
network differed by up to 7 % with each process's memory history.

Writes ``OUT/benchmark.json`` (settings, summary, every run) and
``OUT/benchmark.png`` (time and memory bars per variant).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Sequence

import torch
from torch import nn

# Architectures: the family decides the variants, the rest builds the backbone.
ARCHS = {
    'resnet18': dict(family='resnet', depth=18),
    'resnet34': dict(family='resnet', depth=34),
    'resnet50': dict(family='resnet', depth=50),
    'resnet101': dict(family='resnet', depth=101),
    'repvgg-a0': dict(family='repvgg', arch='A0'),
    'repvgg-a1': dict(family='repvgg', arch='A1'),
    'repvgg-a2': dict(family='repvgg', arch='A2'),
    'repvgg-b0': dict(family='repvgg', arch='B0'),
}
# Training variants per family; the first is the plain network ratios refer to.
VARIANTS = {
    'resnet': ('plain', 'dbb', 'orepa'),
    'repvgg': ('plain', 'repvgg', 'orepa-vgg'),
}
# The variant whose squeezed form is timed at inference against 'stock'.
DEPLOYED_VARIANT = {'resnet': 'orepa', 'repvgg': 'orepa-vgg'}
PLAIN = 'plain'
STOCK = 'stock'
NUM_CLASSES = 1000
IN_CHANNELS = 3
# The networks downsample by 32; smaller inputs end in empty feature maps.
MIN_SIZE = 32
MODES = ('train', 'infer')


def _resnet(spec: dict, variant: str) -> nn.Module:
    from mmpretrain.models.backbones import ResNet

    from mmorepa import OREPAResNet
    if variant == STOCK:
        return ResNet(spec['depth'], out_indices=(3, ))
    reparam = {'plain': None, 'dbb': 'dbb', 'orepa': 'orepa'}[variant]
    return OREPAResNet(spec['depth'], reparam=reparam, out_indices=(3, ))


def _repvgg(spec: dict, variant: str) -> nn.Module:
    from mmpretrain.models.backbones import RepVGG

    from mmorepa import OREPARepVGG
    if variant in (PLAIN, STOCK):
        # The deploy form: one 3x3 conv with bias + ReLU per block, a plain VGG.
        return RepVGG(spec['arch'], deploy=True)
    reparam = {'repvgg': 'repvgg', 'orepa-vgg': 'orepa'}[variant]
    return OREPARepVGG(spec['arch'], reparam=reparam)


BACKBONE_BUILDERS: Dict[str, Callable[[dict, str], nn.Module]] = {
    'resnet': _resnet,
    'repvgg': _repvgg,
}


class Classifier(nn.Module):
    """Backbone, global average pooling and a linear layer.

    Args:
        backbone (nn.Module): An OpenMMLab backbone returning a tuple of
            feature maps; the last one is classified.
        num_classes (int): Outputs of the linear layer. Default: 1000.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(feature_channels(backbone), num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = self.backbone(inputs)[-1]
        return self.fc(features.mean(dim=(2, 3)))


@torch.no_grad()
def feature_channels(backbone: nn.Module) -> int:
    """Channels of the backbone's last output, from a tiny eval-mode forward.

    Eval mode keeps the BatchNorm statistics untouched; going back to train
    mode drops the kernels OREPA layers cache in eval.
    """
    backbone.eval()
    channels = backbone(torch.zeros(1, IN_CHANNELS, MIN_SIZE, MIN_SIZE))[-1].shape[1]
    backbone.train()
    return channels


def build_classifier(arch: str, variant: str) -> Classifier:
    """The benchmark model of ``arch`` in ``variant`` (train mode, CPU)."""
    spec = ARCHS[arch]
    return Classifier(BACKBONE_BUILDERS[spec['family']](spec, variant))


def count_params(model: nn.Module) -> int:
    return sum(param.numel() for param in model.parameters())


def peak_rss_mb() -> float:
    """Peak resident size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds one call of ``step`` takes, the device's queue drained on both ends."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def time_steps(step: Callable[[], None], steps: int, warmup: int,
               device: torch.device) -> List[float]:
    """Times of ``steps`` calls of ``step`` after ``warmup`` untimed ones.

    On a GPU the peak-memory counter is reset after the warm-up, so the peak
    is that of the steady state (weights, gradients, momentum, activations).
    """
    for _ in range(warmup):
        step()
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    return [timed(step, device) for _ in range(steps)]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                  labels: torch.Tensor) -> Callable[[], None]:
    """One forward + backward + SGD update, as a closure."""
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(inputs), labels).backward()
        optimizer.step()

    return step


def kernel_generation_times(model: nn.Module, steps: int, warmup: int,
                            device: torch.device) -> dict:
    """Seconds to generate (forward + backward) every squeezed kernel of ``model``,
    and the matrix-product branches alone; medians of ``steps`` runs."""
    from mmorepa.layers import ReparamConv2d
    from mmorepa.layers.orepa_branches import Conv1x1KxKBranch, LinearChainBranch
    layers = [module for module in model.modules() if isinstance(module, ReparamConv2d)]
    products = [module for module in model.modules()
                if isinstance(module, (Conv1x1KxKBranch, LinearChainBranch))]

    def generate(kernels: Callable[[], List[torch.Tensor]]) -> Callable[[], None]:
        def run() -> None:
            outputs = kernels()
            torch.autograd.backward(outputs, [torch.ones_like(output) for output in outputs])

        return run

    all_kernels = generate(lambda: [layer.squeezed_kernel()[0] for layer in layers])
    product_kernels = generate(lambda: [branch.kernel() for branch in products])
    return dict(
        kernel_generation_s=statistics.median(time_steps(all_kernels, steps, warmup, device)),
        products_s=statistics.median(time_steps(product_kernels, steps, warmup, device)))


def measure_training(args: argparse.Namespace, device: torch.device) -> dict:
    """Step times, peak memory and parameter counts of one training variant."""
    from mmorepa import reparameterize
    model = build_classifier(args.arch, args.variant).to(device).train()
    # Same optimizer as the ImageNet configs (lr is irrelevant to the cost).
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    inputs = torch.randn(args.batch, IN_CHANNELS, args.size, args.size, device=device)
    labels = torch.randint(NUM_CLASSES, (args.batch, ), device=device)
    times = time_steps(training_step(model, optimizer, inputs, labels), args.steps,
                       args.warmup, device)
    peak = peak_memory_mb(device)  # before squeezing, which copies the model
    result = dict(times_s=times, peak_memory_mb=peak, params_train=count_params(model))
    if args.variant in DEPLOYED_VARIANT.values():
        result.update(kernel_generation_times(model, args.steps, args.warmup, device))
    result['params_deploy'] = count_params(reparameterize(model.eval()))
    return result


def measure_inference(args: argparse.Namespace, device: torch.device) -> List[dict]:
    """Forward times (eval mode) of the squeezed variant and of the stock network,
    alternating batch by batch in this process."""
    from mmorepa import reparameterize
    models = {
        STOCK: build_classifier(args.arch, STOCK).eval().to(device),
        args.variant: reparameterize(build_classifier(args.arch, args.variant).eval(),
                                     inplace=True).to(device),
    }
    inputs = torch.randn(args.batch, IN_CHANNELS, args.size, args.size, device=device)

    def forward(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                model(inputs)

        return run

    times = {name: [] for name in models}
    for index in range(args.warmup + args.steps):
        for name, model in models.items():
            seconds = timed(forward(model), device)
            if index >= args.warmup:
                times[name].append(seconds)
    peak = peak_memory_mb(device)
    return [
        dict(variant=name, times_s=times[name], peak_memory_mb=peak,
             params_train=count_params(model), params_deploy=count_params(model))
        for name, model in models.items()
    ]


def run_worker(args: argparse.Namespace) -> int:
    """Measure one job in this process; print its runs as one JSON list."""
    import mmorepa  # noqa: F401  (the same imports, hence baseline memory, for every variant)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as in training; the warm-up tunes it
    rss_before_model_mb = peak_rss_mb()
    if args.mode == 'train':
        results = [dict(measure_training(args, device), variant=args.variant)]
    else:
        results = measure_inference(args, device)
    for result in results:
        result.update(arch=args.arch, mode=args.mode, pid=os.getpid(),
                      median_s=statistics.median(result['times_s']),
                      rss_before_model_mb=rss_before_model_mb,
                      memory_source=('torch.cuda.max_memory_allocated'
                                     if device.type == 'cuda' else 'ru_maxrss'))
    print(json.dumps(results))
    return 0


def measurement_plan(archs: Sequence[str]) -> List[dict]:
    """One round of jobs: every training variant, then the inference pair."""
    plan = []
    for arch in archs:
        family = ARCHS[arch]['family']
        plan += [dict(arch=arch, variant=variant, mode='train') for variant in VARIANTS[family]]
        plan.append(dict(arch=arch, variant=DEPLOYED_VARIANT[family], mode='infer'))
    return plan


def spawn_worker(job: dict, args: argparse.Namespace) -> List[dict]:
    """Run one job in a fresh process of this script; its runs."""
    command = [
        sys.executable, os.path.abspath(__file__), '--worker', '--archs', job['arch'],
        '--variant', job['variant'], '--mode', job['mode'], '--batch', str(args.batch),
        '--size', str(args.size), '--steps', str(args.steps), '--warmup', str(args.warmup),
        '--threads', str(args.threads), '--device', args.device
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith('[{')]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"worker for {job} failed (exit {done.returncode}):\n"
                           f'{done.stderr[-3000:]}')
    return json.loads(lines[-1])


def progress_line(index: int, total: int, repeat: int, repeats: int, run: dict) -> str:
    unit = 's/step' if run['mode'] == 'train' else 's/batch'
    return (f"[{index:>{len(str(total))}}/{total}] round {repeat + 1}/{repeats}  "
            f"{run['arch']:<10} {run['variant']:<10} {run['mode']:<5}  "
            f"{run['median_s']:.4f} {unit}  peak {run['peak_memory_mb']:.0f} MB")


def run_all(args: argparse.Namespace) -> List[dict]:
    """Every job of the plan, the rounds interleaved (A B C A B C)."""
    plan = measurement_plan(args.archs)
    total = len(plan) * args.repeats
    runs = []
    for repeat in range(args.repeats):
        for index, job in enumerate(plan):
            for run in spawn_worker(job, args):
                run['round'] = repeat
                runs.append(run)
                print(progress_line(repeat * len(plan) + index + 1, total, repeat, args.repeats,
                                    run), flush=True)
    return runs


def _median_of(runs: List[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def summarize(runs: List[dict], archs: Sequence[str], batch: int) -> dict:
    """Medians over rounds per variant, with ratios to the plain / stock network.

    Returns:
        dict: ``{arch: {'train': {variant: ...}, 'infer': {variant: ...}}}``.
    """
    summary = {}
    for arch in archs:
        family = ARCHS[arch]['family']
        entry = dict(train={}, infer={})
        for mode, variants in (('train', VARIANTS[family]),
                               ('infer', (STOCK, DEPLOYED_VARIANT[family]))):
            for variant in variants:
                mine = [r for r in runs
                        if (r['arch'], r['variant'], r['mode']) == (arch, variant, mode)]
                entry[mode][variant] = dict(
                    median_s=_median_of(mine, 'median_s'),
                    peak_memory_mb=_median_of(mine, 'peak_memory_mb'),
                    params_train=mine[0]['params_train'],
                    params_deploy=mine[0]['params_deploy'], rounds=len(mine))
                for key in ('kernel_generation_s', 'products_s'):
                    if key in mine[0]:
                        entry[mode][variant][key] = _median_of(mine, key)
        add_ratios(entry['train'], PLAIN)
        for result in entry['infer'].values():
            result['images_per_s'] = batch / result['median_s']
        stock_rate = entry['infer'][STOCK]['images_per_s']
        for result in entry['infer'].values():
            result['throughput_ratio'] = result['images_per_s'] / stock_rate
        summary[arch] = entry
    return summary


def add_ratios(results: Dict[str, dict], reference: str) -> None:
    """Time and memory of every variant relative to ``reference``, in place."""
    base = results[reference]
    for result in results.values():
        result['time_ratio'] = result['median_s'] / base['median_s']
        result['memory_ratio'] = result['peak_memory_mb'] / base['peak_memory_mb']
        for key in ('kernel_generation_s', 'products_s'):
            if key in result:
                result[key.replace('_s', '_share')] = result[key] / base['median_s']


def format_tables(summary: dict, args: argparse.Namespace) -> str:
    """The training table and the inference table, as text."""
    lines = [
        f'Training step: batch {args.batch}, {args.size}x{args.size}, {args.device}, '
        f'{args.threads} thread(s); median of {args.steps} steps after {args.warmup} '
        f'warm-up, median over {args.repeats} round(s)',
        f"{'arch':<10} {'variant':<10} {'params train':>12} {'params deploy':>13} "
        f"{'step time':>18} {'peak memory':>18}",
    ]
    for arch, entry in summary.items():
        for variant, r in entry['train'].items():
            lines.append(
                f"{arch:<10} {variant:<10} {r['params_train'] / 1e6:>10.2f} M "
                f"{r['params_deploy'] / 1e6:>11.2f} M {r['median_s']:>9.4f} s "
                f"({r['time_ratio']:.2f}x) {r['peak_memory_mb']:>8.0f} MB "
                f"({r['memory_ratio']:.2f}x)")
    lines += ['', 'Where the OREPA step time goes (forward + backward, no feature maps), '
              'as a share of the plain step']
    for arch, entry in summary.items():
        for variant, r in entry['train'].items():
            if 'kernel_generation_s' in r:
                lines.append(f"{arch:<10} {variant:<10} all kernels {r['kernel_generation_s']:.4f} s "
                             f"({r['kernel_generation_share']:.2f}); of which matrix products "
                             f"{r['products_s']:.4f} s ({r['products_share']:.2f})")
    lines += ['', 'Deployed inference (eval, no_grad): squeezed model vs stock plain network',
              f"{'arch':<10} {'model':<18} {'params':>10} {'images/s':>10} {'ratio':>7}"]
    for arch, entry in summary.items():
        for variant, r in entry['infer'].items():
            name = 'stock plain' if variant == STOCK else f'squeezed {variant}'
            lines.append(f"{arch:<10} {name:<18} {r['params_deploy'] / 1e6:>8.2f} M "
                         f"{r['images_per_s']:>10.1f} {r['throughput_ratio']:>6.2f}x")
    return '\n'.join(lines)


def plot(summary: dict, path: str) -> None:
    """Time and memory bars per variant (Figure 8's layout), ratios on the bars."""
    import matplotlib
    matplotlib.use('Agg')  # files only; no display on benchmark machines
    import matplotlib.pyplot as plt
    bars = [(arch, variant, r) for arch, entry in summary.items()
            for variant, r in entry['train'].items()]
    labels = [f'{arch}\n{variant}' for arch, variant, _ in bars]
    # Colour by role: plain, offline re-param baseline, OREPA.
    colours = ['#9e9e9e', '#4c72b0', '#dd8452']
    roles = [VARIANTS[ARCHS[arch]['family']].index(variant) for arch, variant, _ in bars]
    figure, axes = plt.subplots(1, 2, figsize=(max(6, 1.1 * len(bars)) * 2 / 1.5, 4))
    for axis, key, ratio, title in ((axes[0], 'median_s', 'time_ratio', 'training step (s)'),
                                    (axes[1], 'peak_memory_mb', 'memory_ratio',
                                     'peak memory (MB)')):
        heights = [r[key] for _, _, r in bars]
        drawn = axis.bar(range(len(bars)), heights, color=[colours[i] for i in roles])
        for rectangle, (_, _, r) in zip(drawn, bars):
            axis.annotate(f'{r[ratio]:.2f}x', (rectangle.get_x() + rectangle.get_width() / 2,
                                                rectangle.get_height()),
                          ha='center', va='bottom', fontsize=8)
        axis.set_xticks(range(len(bars)), labels, fontsize=7)
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def write_json(path: str, args: argparse.Namespace, summary: dict, runs: List[dict]) -> None:
    settings = {key: getattr(args, key) for key in
                ('archs', 'batch', 'size', 'steps', 'warmup', 'repeats', 'threads', 'device')}
    settings.update(torch=torch.__version__, python=platform.python_version(),
                    machine=platform.machine(), processor=platform.processor(),
                    cpu_count=os.cpu_count())
    if args.device == 'cuda':
        settings['gpu'] = torch.cuda.get_device_name()
    with open(path, 'w') as file:
        json.dump(dict(settings=settings, summary=summary, runs=runs), file, indent=2)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line arguments; errors name the argument and what it accepts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--archs', nargs='+', default=['resnet18', 'resnet50', 'repvgg-a0'],
                        choices=sorted(ARCHS), metavar='ARCH',
                        help=f'architectures, of {sorted(ARCHS)} '
                        '(default: resnet18 resnet50 repvgg-a0)')
    parser.add_argument('--batch', type=int, default=32, help='batch size (default: 32)')
    parser.add_argument('--size', type=int, default=224, help='input side (default: 224)')
    parser.add_argument('--steps', type=int, default=5,
                        help='timed steps per measurement (default: 5)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps before them (default: 2)')
    parser.add_argument('--repeats', type=int, default=2,
                        help='rounds over all variants, interleaved (default: 2)')
    parser.add_argument('--threads', type=int, default=available_cores(),
                        help='torch threads per measurement (default: all cores, '
                        f'{available_cores()} here)')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--out', default='work_dirs/benchmark',
                        help='folder for benchmark.json and benchmark.png')
    # Internal: one measurement in this process (spawned by the driver).
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--variant', help=argparse.SUPPRESS)
    parser.add_argument('--mode', choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('batch', 'steps', 'repeats', 'threads'):
        if getattr(args, name) <= 0:
            parser.error(f'--{name} must be a positive int, got {getattr(args, name)}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.size < MIN_SIZE:
        parser.error(f'--size must be >= {MIN_SIZE} (the networks downsample by 32), '
                     f'got {args.size}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    if args.worker:
        _check_worker_args(parser, args)
    return args


def _check_worker_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if len(args.archs) != 1:
        parser.error(f'--worker measures one arch, got --archs {" ".join(args.archs)}')
    if args.mode is None:
        parser.error(f'--worker needs --mode, one of {MODES}')
    args.arch = args.archs[0]
    family = ARCHS[args.arch]['family']
    allowed = VARIANTS[family] if args.mode == 'train' else (DEPLOYED_VARIANT[family], )
    if args.variant not in allowed:
        parser.error(f'--variant for {args.arch} in mode {args.mode!r} must be one of '
                     f'{allowed}, got {args.variant!r}')


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    plan = measurement_plan(args.archs)
    print(f'{len(plan) * args.repeats} jobs, each in its own process ({len(plan)} per round, '
          f'{args.repeats} round(s)); an inference job times the stock and the squeezed '
          'network together', flush=True)
    try:
        runs = run_all(args)
    except RuntimeError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    summary = summarize(runs, args.archs, args.batch)
    print('\n' + format_tables(summary, args))
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, 'benchmark.json')
    png_path = os.path.join(args.out, 'benchmark.png')
    write_json(json_path, args, summary, runs)
    plot(summary, png_path)
    baseline = statistics.median(run['rss_before_model_mb'] for run in runs)
    if args.device == 'cpu':
        print(f'\n(CPU peak memory is the whole process: {baseline:.0f} MB of it is the '
              'interpreter and libraries before any model is built.)')
    print(f'\nwrote {json_path} and {png_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
