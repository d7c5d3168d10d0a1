"""Shared test helpers: tolerance checks and random BatchNorm statistics."""
import torch
from torch import nn

# Max-abs error allowed, as a fraction of the reference output's scale.
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rel: float = None):
    """``max|actual - expected| <= rel * max|expected|`` (rel by dtype if not given)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    rel = TOLERANCE[expected.dtype] if rel is None else rel
    scale = expected.abs().max().clamp_min(1e-12)
    error = (actual - expected).abs().max()
    assert error <= rel * scale, f'max error {error:.3e} > {rel:.0e} x scale {scale:.3e}'


def randomize_norms(model: nn.Module, generator: torch.Generator = None) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator))
                module.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.1)
                if module.affine:
                    module.weight.copy_(torch.randn(n, generator=generator))
                    module.bias.copy_(torch.randn(n, generator=generator))
    return model


def randomize_scales(model: nn.Module, generator: torch.Generator = None) -> nn.Module:
    """Random branch scales, so no branch is switched off by its initial value."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('scales'):
                param.copy_(torch.randn(param.shape, generator=generator))
    return model
