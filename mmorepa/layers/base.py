"""What every re-parameterizable conv layer shares."""
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ..utils import check_choice, check_positive_int, name_list
from .squeeze import Squeezable
from .stock_conv import make_template, materialize

# Buffers that BatchNorm fills in itself when a checkpoint lacks them.
OPTIONAL_KEY_SUFFIX = 'num_batches_tracked'


def _check_size(name: str, value, minimum: int) -> Tuple[int, int]:
    pair = _pair(value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f'{name} must be an int or a pair of ints, got {value!r}')
        if v < minimum:
            raise ValueError(f'{name} must be >= {minimum}, got {value!r}')
    return pair


class ReparamConv2d(Squeezable, nn.Module):
    """Base of conv layers that train as several branches and deploy as one conv.

    It holds the geometry of the equivalent ``nn.Conv2d`` under the same
    attribute names (``in_channels``, ``out_channels``, ``kernel_size``,
    ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``, ``transposed``,
    ``output_padding``) so code written for ``nn.Conv2d`` (mmcv's
    ``ConvModule``, ResNet builders) reads them unchanged. Subclasses define
    :meth:`squeezed_kernel`, :meth:`set_squeezed_kernel` and the forward pass:
    OREPA layers convolve with a kernel they generate
    (:class:`~mmorepa.layers.generated_kernel.GeneratedKernelConv2d`), a DBB
    runs its branches on the feature maps.

    The layer loads either form of its weights, by every loader
    (``load_state_dict``, mmengine's ``Pretrained`` init and ``load_from``):
    its own branch tensors, or a stock conv's ``weight`` (and ``bias``) under
    its prefix, which it solves for through :meth:`set_squeezed_kernel` so
    that it starts as exactly that conv. A load that gives it neither raises
    an error naming the layer and its missing keys.

    :meth:`convolve_like` makes it convolve (and squeeze) as a given stock
    conv class does, e.g. with TensorFlow "same" padding
    (:mod:`mmorepa.layers.stock_conv`).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple[int, int]): Square kernel size.
        stride (int | tuple[int, int]): Default: 1.
        padding (int | tuple[int, int]): Zero padding. Default: 0.
        dilation (int | tuple[int, int]): Default: 1.
        groups (int): Default: 1.
        bias (bool): Add a learnable bias after the conv. Default: False.
        padding_mode (str): ``'zeros'``; other padding through :meth:`convolve_like`.
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
        self.stock_conv: Optional[nn.Conv2d] = None

    def convolve_like(self, conv: nn.Conv2d) -> 'ReparamConv2d':
        """Convolve as ``conv`` does (its class's forward: padding subclass or
        padding mode), and squeeze into a conv of its class.

        Args:
            conv (nn.Conv2d): A conv of this layer's geometry; only its class and
                attributes are used, not its weights.

        Returns:
            ReparamConv2d: ``self``.

        Raises:
            ValueError: The geometry differs, or ``conv`` holds more state than
                a kernel and a bias.
        """
        ours = (self.in_channels, self.out_channels, self.kernel_size, self.stride,
                self.dilation, self.groups, self.bias is not None)
        theirs = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.dilation, conv.groups, conv.bias is not None)
        if ours != theirs:
            raise ValueError(f'conv {theirs} must have the geometry of this layer {ours} '
                             '(in, out, kernel, stride, dilation, groups, bias)')
        # Kept outside the module tree: it has no state of its own to save or move.
        object.__setattr__(self, 'stock_conv', make_template(conv))
        self.padding, self.padding_mode = conv.padding, conv.padding_mode
        return self

    @property
    def kernel_shape(self) -> Tuple[int, int, int, int]:
        """Shape of the squeezed kernel, ``(O, I/g, k, k)``."""
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def squeezed_kernel(self) -> Tuple[Tensor, Optional[Tensor]]:
        """The single ``(kernel, bias)`` equal to all branches (differentiable).

        ``bias`` is ``None`` when the layer has none.
        """
        raise NotImplementedError

    def set_squeezed_kernel(self, kernel: Tensor, bias: Optional[Tensor] = None) -> None:
        """Change the parameters so that :meth:`squeezed_kernel` gives ``(kernel, bias)``.

        The inverse of squeezing, used to start from a stock network's weights:
        one branch is solved for, the others keep their values. In place.

        Args:
            kernel (Tensor): Wanted kernel, shape :attr:`kernel_shape`.
            bias (Tensor, optional): Wanted bias ``(O,)``; ``None`` means none
                (or zero).

        Raises:
            ValueError: A shape does not fit, or this layer cannot hold the
                kernel (the message says why).
        """
        raise NotImplementedError

    def _check_squeezed(self, kernel: Tensor, bias: Optional[Tensor]) -> None:
        if tuple(kernel.shape) != self.kernel_shape:
            raise ValueError(f'kernel must have shape {self.kernel_shape}, '
                             f'got {tuple(kernel.shape)}')
        if bias is not None and tuple(bias.shape) != (self.out_channels, ):
            raise ValueError(f'bias must have shape ({self.out_channels},), '
                             f'got {tuple(bias.shape)}')

    def _set_bias(self, bias: Optional[Tensor]) -> None:
        if self.bias is not None:
            with torch.no_grad():
                self.bias.copy_(torch.zeros_like(self.bias) if bias is None else bias)
        elif bias is not None and bias.abs().max() > 0:
            raise ValueError(f'{type(self).__name__} was built with bias=False and cannot '
                             'hold a non-zero bias')

    def _state_tensors(self) -> Iterator[Tensor]:
        yield from self.parameters()
        yield from self.buffers()

    def _device_type(self) -> str:
        return next(self._state_tensors()).device.type

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # Every loader (torch's, mmengine's) hands this dict on to the children
        # after this call: a stock conv's weight is turned here into this
        # layer's own tensors, which the children then load.
        # The bias is a key of both forms: the branch tensors decide.
        own = [prefix + key for key in self.state_dict()
               if not key.endswith(OPTIONAL_KEY_SUFFIX) and key != 'bias']
        present = [key for key in own if key in state_dict]
        if len(present) < len(own):
            if present or prefix + 'weight' not in state_dict:
                missing = [key for key in own if key not in state_dict]
                raise ValueError(
                    f're-param layer {prefix[:-1]!r} ({type(self).__name__}) gets neither its '
                    f'own tensors (missing {len(missing)}: {name_list(missing)}) nor a stock '
                    f"conv's {prefix}weight: a checkpoint of another model, or a wrong prefix?")
            self._load_stock_conv(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    @torch.no_grad()
    def _load_stock_conv(self, state_dict, prefix: str) -> None:
        kernel = state_dict.pop(prefix + 'weight')
        bias = state_dict.pop(prefix + 'bias', None)
        if tuple(kernel.shape) != self.kernel_shape:
            raise ValueError(f'{prefix}weight has shape {tuple(kernel.shape)}, the layer '
                             f'{prefix[:-1]!r} needs {self.kernel_shape} (another architecture?)')
        like = next(self._state_tensors())
        self.set_squeezed_kernel(kernel.to(like), None if bias is None else bias.to(like))
        state_dict.update(self.state_dict(prefix=prefix))

    @torch.no_grad()
    def squeeze(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` equal to this layer (in eval mode), in its dtype."""
        with torch.autocast(self._device_type(), enabled=False):
            kernel, bias = self._deploy_kernel()
        if self.stock_conv is not None:
            return materialize(self.stock_conv, kernel, bias).train(self.training)
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         self.padding, self.dilation, self.groups, bias=bias is not None,
                         device=kernel.device, dtype=kernel.dtype)
        conv.weight.copy_(kernel)
        if bias is not None:
            conv.bias.copy_(bias)
        return conv.train(self.training)

    def _deploy_kernel(self) -> Tuple[Tensor, Optional[Tensor]]:
        """The kernel and bias :meth:`squeeze` puts into the conv."""
        return self.squeezed_kernel()

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
                f'groups={self.groups}, bias={self.bias is not None}')
