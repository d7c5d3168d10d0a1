"""Mixed precision against float32 on the same model, start and batches.

Two measurements: the gradients of one step (does float16 keep them finite
under a loss scale, and how close are they to float32's), and a short
training run in each precision (do the losses stay finite and follow
float32's), stepped by the benchmark's mmengine optimizer wrappers: on a GPU
``AmpOptimWrapper``'s float16 with dynamic loss scaling, as a Runner trains
with ``--amp``.
"""
import copy
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import ReparamConv2d
from .models import optim_wrapper

# The loss scale of the gradient check: GradScaler's initial scale.
LOSS_SCALE = 2.0**16


def _cosine(a: Tensor, b: Tensor) -> float:
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def _loss(model: nn.Module, inputs: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(model(inputs).float(), labels)


def gradient_agreement(model: nn.Module, inputs: Tensor, labels: Tensor,
                       dtype: torch.dtype = torch.float16,
                       loss_scale: float = LOSS_SCALE) -> Dict[str, float]:
    """One backward pass in float32 and one under ``dtype`` autocast with a
    loss scale, from the same weights and batch.

    The scale starts at ``loss_scale`` and is halved while any gradient
    overflows, as ``GradScaler`` does: the scale reached says how much range
    the model's gradients leave (compare a plain network's).

    Args:
        model (nn.Module): A classifier in train mode (logits out).
        inputs (Tensor): A batch, on the model's device.
        labels (Tensor): Its class indices.
        dtype (torch.dtype): The autocast dtype. Default: float16.
        loss_scale (float): The first loss scale tried. Default: 2^16.

    Returns:
        dict: ``loss_scale`` (the largest tried with every gradient finite;
        0 if none of 17 halvings), ``cosine`` (all gradients, flattened
        together, against float32's), ``min_layer_cosine`` and
        ``min_layer`` (the least aligned re-param layer's parameters),
        ``loss_float32`` and ``loss_mixed``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    state = copy.deepcopy(model.state_dict())

    def backward(scale: float, autocast: bool):
        model.load_state_dict(state)  # every pass moves the norms' statistics
        with torch.autocast(inputs.device.type, dtype=dtype, enabled=autocast):
            loss = _loss(model, inputs, labels)
        grads = torch.autograd.grad(loss * scale, params, allow_unused=True)
        return loss.item(), [torch.zeros_like(p) if g is None else g.float() / scale
                             for p, g in zip(params, grads)]

    loss32, grads32 = backward(1.0, autocast=False)
    scale = loss_scale
    for _ in range(17):
        mixed, grads = backward(scale, autocast=True)
        if all(torch.isfinite(g).all().item() for g in grads):
            break
        scale /= 2
    else:
        scale = 0.0
    model.load_state_dict(state)
    index = {id(p): i for i, p in enumerate(params)}
    layers = {}
    for name, module in model.named_modules():
        own = [index[id(p)] for p in module.parameters() if id(p) in index]
        if isinstance(module, ReparamConv2d) and own:
            layers[name] = _cosine(torch.cat([grads[i].flatten() for i in own]),
                                   torch.cat([grads32[i].flatten() for i in own]))
    worst = min(layers, key=layers.get) if layers else None
    return dict(loss_scale=scale,
                cosine=_cosine(torch.cat([g.flatten() for g in grads]),
                               torch.cat([g.flatten() for g in grads32])),
                min_layer_cosine=layers.get(worst), min_layer=worst,
                loss_float32=loss32, loss_mixed=mixed)


def training_losses(build: Callable[[], nn.Module], inputs: Tensor, labels: Tensor,
                    steps: int, amp: bool,
                    progress: Callable[[str], None] = print) -> List[float]:
    """Losses of ``steps`` SGD steps on one batch, the way a Runner steps, in
    the benchmark's optimizer wrapper (:func:`mmorepa.benchmark.models.optim_wrapper`:
    float16 with dynamic loss scaling on a GPU under ``amp``).

    Args:
        build (callable): Returns the model, the same start on every call.
        inputs (Tensor): The batch, on the device to train on.
        labels (Tensor): Its class indices.
        steps (int): Optimizer steps.
        amp (bool): Mixed precision.
        progress (callable): Gets a line every 10 steps.
    """
    model = build().to(inputs.device).train()
    wrapper = optim_wrapper(model, inputs.device, amp)
    losses = []
    for step in range(steps):
        with wrapper.optim_context(model):
            loss = _loss(model, inputs, labels)
        wrapper.update_params(loss)
        losses.append(loss.item())
        if (step + 1) % 10 == 0:
            progress(f"{'AMP' if amp else 'float32'} step {step + 1}/{steps}: "
                     f'loss {losses[-1]:.4f}')
    return losses
