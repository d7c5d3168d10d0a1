"""Where the weight solvers compute: in float64, on the CPU."""
import torch
from torch import Tensor


def solver_tensor(tensor: Tensor) -> Tensor:
    """A detached float64 copy of ``tensor`` on the CPU, for the weight solvers.

    The solvers that start a layer from given weights (the layers'
    ``set_squeezed_kernel`` and what it calls) compute here whatever device
    the layer is on, and copy their result back into its parameters: float64
    keeps their exactness checks meaningful, CUDA's ``torch.linalg.lstsq``
    solves only full-rank overdetermined systems (the 7x7 stem's is
    underdetermined), and some devices have no float64 at all. A solve runs
    once per layer when a model starts, never in a forward pass.

    Args:
        tensor (Tensor): Any tensor.
    """
    return tensor.detach().to(device='cpu', dtype=torch.float64)
