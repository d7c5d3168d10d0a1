"""Unsqueezed computations: every branch run on the feature map.

Written against the method spec, not through mmorepa's kernel functions, so
that a squeezed layer can be checked against what its branches mean.
"""
import torch
import torch.nn.functional as F


def _conv(x, weight, layer, groups=None):
    return F.conv2d(x, weight, None, layer.stride, layer.padding, layer.dilation,
                    layer.groups if groups is None else groups)


def _centred_1x1(x, weight, layer):
    """A 1x1 conv placed at the centre of the layer's dilated k x k window."""
    offset = layer.dilation[0] * (layer.kernel_size[0] // 2) - layer.padding[0]
    return F.conv2d(F.pad(x, [-offset] * 4), weight, None, layer.stride, 0, 1, layer.groups)


def orepa_branch_outputs(branches, layer, x):
    """Feature-map output of each OREPA branch (unscaled), by branch name."""
    g, k = layer.groups, layer.kernel_size[0]
    out = {}
    for name, branch in branches.items():
        if name == 'origin':
            out[name] = _conv(x, branch.weight, layer)
        elif name == 'avg':
            mapped = F.conv2d(x, branch.weight, groups=g)
            uniform = torch.full((mapped.shape[1], 1, k, k), 1.0 / k**2, dtype=x.dtype)
            out[name] = _conv(mapped, uniform, layer, groups=mapped.shape[1])
        elif name == 'prior':
            mapped = F.conv2d(x, branch.weight, groups=g)
            out[name] = _conv(mapped, branch.basis[:, None], layer, groups=mapped.shape[1])
        elif name == '1x1_kxk':
            mapped = F.conv2d(x, branch.identity + branch.delta, groups=g)
            out[name] = _conv(mapped, branch.conv2, layer)
        elif name == '1x1':
            out[name] = _centred_1x1(x, branch.weight, layer)
        elif name == 'dws':
            mapped = _conv(x, branch.depthwise, layer, groups=x.shape[1])
            out[name] = F.conv2d(mapped, branch.pointwise, groups=g)
        elif name == '1x1_1x1':
            out[name] = _conv(F.conv2d(x, branch.conv1), branch.conv2, layer)
        else:
            raise KeyError(name)
    return out


def weighted_sum(branch_sum, outputs):
    total = 0
    for index, name in enumerate(branch_sum.keys()):
        scale = 1.0 if branch_sum.scales is None else branch_sum.scales[index].reshape(1, -1, 1, 1)
        total = total + scale * outputs[name]
    return total


def orepa_layer_unsqueezed(layer, x):
    """The output of an OREPAConv2d / OREPA1x1Conv2d computed branch by branch."""
    out = weighted_sum(layer.branches, orepa_branch_outputs(layer.branches, layer, x))
    if layer.bias is not None:
        out = out + layer.bias.reshape(1, -1, 1, 1)
    return out
