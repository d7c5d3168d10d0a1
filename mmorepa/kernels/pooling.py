"""Average pooling after a 1x1 conv, as one kernel."""
from torch import Tensor


def avg_pool_kernel(conv1x1: Tensor, size: int) -> Tensor:
    """Kernel of a 1x1 conv followed by ``size x size`` average pooling.

    Equal to ``avg_pool2d(conv(x, conv1x1), size, stride, padding,
    count_include_pad=True)`` when the kernel is applied with that stride and
    padding: zero padding counts in the mean, as it does for a conv.

    Args:
        conv1x1 (Tensor): Kernel ``(O, I/g, 1, 1)``.
        size (int): Pooling window.

    Returns:
        Tensor: Kernel ``(O, I/g, size, size)`` equal to ``conv1x1 / size**2``
        at every position.
    """
    return (conv1x1 / size**2).expand(-1, -1, size, size)
