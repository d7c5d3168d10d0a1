"""Kernel generation compiled by ``torch.compile`` (inductor), once per layer shape.

The branches of a squeezed kernel are many small elementwise passes around a
few matrix products; compiled, the passes fuse (docs/benchmarks.md
gives the measured kernel-generation and step times, eager and compiled).
Every distinct layer shape is one static-shape graph; inductor
keeps the compiled code on disk, so later runs start fast.
"""
import functools
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

# Graphs one process may compile: a ResNet-101 has about 25 layer shapes.
MAX_LAYER_SHAPES = 64


def _squeezed_kernel(layer: nn.Module) -> Tuple[Tensor, Optional[Tensor]]:
    return layer.squeezed_kernel()


@functools.lru_cache(maxsize=None)
def _compiled() -> callable:
    return torch.compile(_squeezed_kernel, dynamic=False)


def compiled_squeezed_kernel(layer: nn.Module) -> Tuple[Tensor, Optional[Tensor]]:
    """``layer.squeezed_kernel()``, compiled (the same values, the same gradients).

    Args:
        layer (ReparamConv2d): Any re-param layer.
    """
    # A graph per shape, all under one function: raise dynamo's per-function
    # recompile limit for these calls only.
    with torch._dynamo.config.patch(recompile_limit=MAX_LAYER_SHAPES):
        return _compiled()(layer)
