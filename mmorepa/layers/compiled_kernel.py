"""Kernel generation compiled by ``torch.compile`` (inductor), once per layer shape.

The branches of a squeezed kernel are many small elementwise passes around a
few matrix products; compiled, the passes fuse (docs/benchmarks.md
gives the measured kernel-generation and step times, eager and compiled).
Every distinct layer shape (and branch placement) is one static-shape graph; inductor
keeps the compiled code on disk, so later runs start fast.
"""
import functools
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

# Graphs one process may compile: a ResNet-101 has about 25 layer shapes.
MAX_LAYER_SHAPES = 64


def _generate_kernel(layer: nn.Module,
                     feature_side: Tuple[int, ...]) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    return layer.generate_kernel(feature_side)


@functools.lru_cache(maxsize=None)
def _compiled() -> callable:
    return torch.compile(_generate_kernel, dynamic=False)


def compiled_kernel(layer: nn.Module,
                    feature_side: Sequence[int] = ()) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``layer.generate_kernel(feature_side)``, compiled (the same values, the
    same gradients).

    Args:
        layer (GeneratedKernelConv2d): Any generated-kernel layer.
        feature_side (Sequence[int]): Branches left out of the kernel.
    """
    # A graph per shape, all under one function: raise dynamo's per-function
    # recompile limit for these calls only.
    with torch._dynamo.config.patch(recompile_limit=MAX_LAYER_SHAPES):
        return _compiled()(layer, tuple(feature_side))
