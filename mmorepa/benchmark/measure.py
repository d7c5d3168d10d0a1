"""Timing and memory of training steps, on the CPU or a GPU.

Time: the compared models live in one process and their steps alternate
(A B C A B C ...), so a slow moment of a shared machine hits every model of
the round alike; a round's ratio is its step time over the reference's in
the same round. (``torch.utils.benchmark`` times one statement many times in
a row, which is what alternation avoids.) Memory: each variant in a fresh
process, whose peak is the variant's alone.
"""
import math
import resource
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from ..layers import GeneratedKernelConv2d
from ..layers.orepa_branches import Conv1x1KxKBranch, LinearChainBranch
from ..layers.placement import InputGeometry


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


def alternate(steps: Dict[str, Callable[[], None]], rounds: int, warmup: int,
              device: torch.device, progress: Callable[[str], None] = print
              ) -> Dict[str, List[float]]:
    """Step times per round, the steps of every model alternating.

    Args:
        steps (dict[str, callable]): Name to one training step.
        rounds (int): Timed rounds; each runs every step once.
        warmup (int): Untimed rounds first.
        device (torch.device): Where the steps run.
        progress (callable): Gets one line per round.
    """
    for _ in range(warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for index in range(rounds):
        for name, step in steps.items():
            times[name].append(timed(step, device))
        progress(f'round {index + 1}/{rounds}: ' + ', '.join(
            f'{name} {seconds[-1]:.3f} s' for name, seconds in times.items()))
    return times


def peak_rss_mb() -> float:
    """Peak resident size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 2**20 if sys.platform == 'darwin' else peak / 2**10


def reset_peak_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """``max_memory_allocated`` on a GPU; the process's peak resident size on the CPU."""
    if device.type == 'cuda':
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def branch_placement(model: nn.Module, step: Callable[[], None]) -> Dict[str, object]:
    """Where one training ``step`` ran each branch (each layer's choice for the
    input it meets; :mod:`mmorepa.layers.placement`), and what that costs by
    the layers' own cost model.

    Returns:
        dict: ``branches``: per branch name ``[layers running it on the
        feature map, layers with it, forward multiply-adds at the placement
        run]``; ``conv_macs``: forward multiply-adds of the layers' convs with
        their folded kernels, what the plain network's convs cost in them.
        Layers without a gradient are left out: they convolve with their
        cached kernel.
    """
    shapes = {}
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, GeneratedKernelConv2d)
              and any(p.requires_grad for p in m.parameters())}

    def record(name):
        def hook(module, args) -> None:
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    hooks = [layer.register_forward_pre_hook(record(name)) for name, layer in layers.items()]
    try:
        step()
    finally:
        for hook in hooks:
            hook.remove()
    counts: Dict[str, List[int]] = {}
    conv_macs = 0
    for name, shape in shapes.items():
        layer = layers[name]
        geometry = InputGeometry.of(shape, layer.stride)
        conv_macs += (geometry.batch * geometry.out_pixels * layer.out_channels
                      * layer.in_channels // layer.groups * math.prod(layer.kernel_size))
        feature_side = () if layer.forward_policy.folds_every_branch else \
            layer.feature_side(shape)
        sides = layer.placement_by_branch(feature_side).items()
        for (branch, side), cost in zip(sides, layer.branch_costs(shape), strict=True):
            count = counts.setdefault(branch, [0, 0, 0])
            count[0] += side == 'feature'
            count[1] += 1
            count[2] += cost.feature_macs if side == 'feature' else cost.kernel_macs
    return dict(branches=counts, conv_macs=conv_macs)


def kernel_generation(model: nn.Module, rounds: int, device: torch.device,
                      autocast_dtype: Optional[torch.dtype] = None) -> Dict[str, float]:
    """Median seconds to generate every squeezed kernel of ``model``, forward and
    backward (no feature maps), and the matrix-product branches alone (1x1-kxk,
    Rep-1x1's chain), whose size the architecture fixes: the floor of OREPA's
    extra cost. Frozen layers (no gradient) are left out, as training leaves them.
    Under ``autocast_dtype`` (the training step's autocast) if given, as the
    step generates them."""
    def trained(module):
        return any(p.requires_grad for p in module.parameters())

    layers = [m for m in model.modules() if isinstance(m, GeneratedKernelConv2d) and trained(m)]
    products = [m for m in model.modules()
                if isinstance(m, (Conv1x1KxKBranch, LinearChainBranch)) and trained(m)]

    def generate(kernels: Callable[[], List[torch.Tensor]]) -> Callable[[], None]:
        def run() -> None:
            with torch.autocast(device.type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                outputs = kernels()
            torch.autograd.backward(outputs, [torch.ones_like(out) for out in outputs])
        return run

    every = generate(lambda: [layer._generate(())[0] for layer in layers])
    product = generate(lambda: [branch.kernel() for branch in products])
    times = alternate(dict(kernels=every, products=product), rounds, 1, device,
                      progress=lambda line: None)
    return {name: statistics.median(seconds) for name, seconds in times.items()}
