"""``orepa-reference``: the OREPA block written the obvious way from the paper.

One kernel expression per branch, each branch scaled as a whole kernel, the
kernels summed, plain autograd: what a direct implementation does (paper,
sec. 3; docs/method.md). It wraps an mmorepa layer and uses its parameters,
so both compute the same kernel; only the cost differs.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import (OREPA1x1Conv2d, OREPAConv2d, OREPALargeConv2d, ReparamConv2d,
                      Squeezable, set_submodule)


def _grouped(groups: int, tensor: Tensor) -> Tensor:
    return tensor.reshape(groups, tensor.shape[0] // groups, *tensor.shape[1:])


def branch_kernel(name: str, branch: nn.Module, size: int, groups: int) -> Tensor:
    """The unscaled ``(O, I/g, k, k)`` kernel of one branch, computed directly."""
    if name == 'origin':
        return branch.weight
    if name == 'avg':
        return branch.weight * torch.full((size, size), 1.0 / size**2,
                                          dtype=branch.weight.dtype, device=branch.weight.device)
    if name == 'prior':
        return branch.weight * branch.basis[:, None]
    if name == '1x1':
        return F.pad(branch.weight, [size // 2] * 4)
    if name == '1x1_kxk':
        first = _grouped(groups, (branch.identity + branch.delta)[:, :, 0, 0])
        kernel = torch.einsum('gothw,gti->goihw', _grouped(groups, branch.conv2), first)
        return kernel.flatten(0, 1)
    if name == 'dws':
        depthwise = branch.depthwise.reshape(groups, -1, 8, size, size)
        pointwise = _grouped(groups, branch.pointwise[:, :, 0, 0])
        pointwise = pointwise.reshape(*pointwise.shape[:2], -1, 8)
        return torch.einsum('goie,giehw->goihw', pointwise, depthwise).flatten(0, 1)
    if name == '1x1_1x1':
        return (branch.conv2[:, :, 0, 0] @ branch.conv1[:, :, 0, 0])[:, :, None, None]
    raise KeyError(name)


def branch_sum_kernel(branch_sum: nn.Module, size: int, groups: int) -> Tensor:
    kernel = 0
    for index, (name, branch) in enumerate(branch_sum.items()):
        scale = 1.0 if branch_sum.scales is None else branch_sum.scales[index].reshape(-1, 1, 1, 1)
        kernel = kernel + scale * branch_kernel(name, branch, size, groups)
    return kernel


class ReferenceOREPA(Squeezable, nn.Module):
    """An mmorepa OREPA layer's forward, written the direct way.

    Args:
        layer (ReparamConv2d): An ``OREPAConv2d``, ``OREPA1x1Conv2d`` or
            ``OREPALargeConv2d``, whose parameters this one uses.
    """

    def __init__(self, layer: ReparamConv2d) -> None:
        super().__init__()
        self.layer = layer

    def kernel(self) -> Tensor:
        layer = self.layer
        if isinstance(layer, OREPALargeConv2d):
            kernel = branch_sum_kernel(layer.generators[0], 3, layer.groups)
            for generator in layer.generators[1:]:
                # Composing two kernels is a transposed convolution of them.
                following = branch_sum_kernel(generator, 3, layer.groups)
                kernel = F.conv_transpose2d(kernel.transpose(0, 1),
                                            following.transpose(0, 1)).transpose(0, 1)
            return kernel
        return branch_sum_kernel(layer.branches, layer.kernel_size[0], layer.groups)

    def squeeze(self) -> nn.Conv2d:
        return self.layer.squeeze()

    def forward(self, x: Tensor) -> Tensor:
        layer = self.layer
        return F.conv2d(x, self.kernel(), layer.bias, layer.stride, layer.padding,
                        layer.dilation, layer.groups)


def use_reference_blocks(model: nn.Module) -> nn.Module:
    """Replace every OREPA layer of ``model`` by :class:`ReferenceOREPA`, in place."""
    for name, module in list(model.named_modules()):
        if isinstance(module, (OREPAConv2d, OREPA1x1Conv2d, OREPALargeConv2d)):
            set_submodule(model, name, ReferenceOREPA(module))
    return model
