"""The place of a backbone's norm after a block that brings its own norms."""
import math
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from torch import Tensor, nn


class AbsentNorm(nn.Identity):
    """An identity where a stock backbone has a norm after a conv.

    The published DBB-ResNet replaces each conv *and* its norm by a DBB,
    whose branches end in norms of their own; a ResNet builder still puts a
    norm after every conv, so this stands in its place. Squeezing turns it
    back into that norm (:meth:`stock_norm`), carrying the squeezed block's
    bias, so the result has the stock architecture.

    Args:
        norm_cfg (dict): Config of the stock norm.
        num_features (int): Its channels.
    """

    def __init__(self, norm_cfg: dict, num_features: int) -> None:
        super().__init__()
        self.norm_cfg = norm_cfg
        self.num_features = num_features

    @torch.no_grad()
    def stock_norm(self, bias: Optional[Tensor], like: Tensor) -> nn.Module:
        """A norm equal, in eval mode, to adding ``bias`` (``None``: zero).

        Running mean 0 and variance 1, weight ``sqrt(1 + eps)`` (computed in
        float64 and rounded once), so the norm scales by one to within a
        rounding, and shifts by ``bias``.

        Args:
            bias (Tensor | None): Per-channel shift.
            like (Tensor): Gives the dtype and device.
        """
        # Built on the device it lives on, rather than built and moved.
        with torch.device(like.device):
            norm = build_norm_layer(self.norm_cfg, self.num_features)[1]
        if norm.weight.dtype != like.dtype:
            norm.to(like.dtype)
        norm.eval()
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0)
        norm.weight.fill_(math.sqrt(1.0 + norm.eps))
        norm.bias.copy_(torch.zeros_like(norm.bias) if bias is None else bias)
        return norm

    def extra_repr(self) -> str:
        return f'{self.num_features}, stands for {self.norm_cfg["type"]}'
