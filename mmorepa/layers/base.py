"""What every re-parameterizable conv layer shares."""
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ..utils import check_choice, check_positive_int


def _check_size(name: str, value, minimum: int) -> Tuple[int, int]:
    pair = _pair(value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}')
        if v < minimum:
            raise ValueError(f'{name} must be >= {minimum}, got {value!r}')
    return pair


class ReparamConv2d(nn.Module):
    """Base of conv layers that train as several branches and deploy as one conv.

    It holds the geometry of the equivalent ``nn.Conv2d`` under the same
    attribute names (``in_channels``, ``out_channels``, ``kernel_size``,
    ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``transposed``,
    ``output_padding``) so code written for ``nn.Conv2d`` (mmcv's
    ``ConvModule``, ResNet builders) reads them unchanged. Subclasses define
    :meth:`squeezed_kernel`; the forward pass convolves with it.

    In eval mode with autograd off, the squeezed kernel is computed once and
    reused until a parameter or buffer changes (optimizer step,
    ``load_state_dict``, ``.to()``) or the layer returns to training, so
    validation runs at the speed of the plain network.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Square kernel size.
        stride (int | tuple[int, int]): Default: 1.
        padding (int | tuple[int, int]): Zero padding. Default: 0.
        dilation (int | tuple[int, int]): Default: 1.
        groups (int): Default: 1.
        bias (bool): Add a learnable bias after the conv. Default: False.
        padding_mode (str): Only ``'zeros'``: the branch algebra assumes it.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size,
                 stride=1,
                 padding=0,
                 dilation=1,
                 groups: int = 1,
                 bias: bool = False,
                 padding_mode: str = 'zeros') -> None:
        super().__init__()
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.out_channels = check_positive_int('out_channels', out_channels)
        self.groups = check_positive_int('groups', groups)
        for name, channels in (('in_channels', in_channels), ('out_channels', out_channels)):
            if channels % groups:
                raise ValueError(f'{name} ({channels}) must be divisible by groups ({groups})')
        self.kernel_size = _check_size('kernel_size', kernel_size, 1)
        if self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError(f'kernel_size must be square, got {kernel_size!r}')
        self.stride = _check_size('stride', stride, 1)
        self.padding = _check_size('padding', padding, 0)
        self.dilation = _check_size('dilation', dilation, 1)
        self.padding_mode = check_choice('padding_mode', padding_mode, ('zeros', ))
        if not isinstance(bias, bool):
            raise TypeError(f'bias must be a bool, got {bias!r}')
        self.transposed = False
        self.output_padding = (0, 0)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._cached_kernel: Optional[Tuple[Tensor, Optional[Tensor]]] = None
        self._cache_key: Optional[tuple] = None

    def squeezed_kernel(self) -> Tuple[Tensor, Optional[Tensor]]:
        """The single ``(kernel, bias)`` equal to all branches (differentiable).

        ``bias`` is ``None`` when the layer has none.
        """
        raise NotImplementedError

    def _state_tensors(self) -> Iterator[Tensor]:
        yield from self.parameters()
        yield from self.buffers()

    def _kernel_for_forward(self) -> Tuple[Tensor, Optional[Tensor]]:
        if self.training or torch.is_grad_enabled():
            self._cached_kernel = None
            return self.squeezed_kernel()
        # data_ptr catches .to() and re-assignment; _version catches in-place
        # updates such as optimizer steps and load_state_dict's copy_.
        key = tuple((t.data_ptr(), t._version) for t in self._state_tensors())
        if self._cached_kernel is None or key != self._cache_key:
            self._cached_kernel = self.squeezed_kernel()
            self._cache_key = key
        return self._cached_kernel

    def train(self, mode: bool = True) -> 'ReparamConv2d':
        self._cached_kernel = None
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        kernel, bias = self._kernel_for_forward()
        return F.conv2d(x, kernel, bias, self.stride, self.padding, self.dilation, self.groups)

    @torch.no_grad()
    def squeeze(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` equal to this layer in eval mode."""
        kernel, bias = self.squeezed_kernel()
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         self.padding, self.dilation, self.groups, bias=bias is not None,
                         device=kernel.device, dtype=kernel.dtype)
        conv.weight.copy_(kernel)
        if bias is not None:
            conv.bias.copy_(bias)
        return conv.train(self.training)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, bias={self.bias is not None}')

