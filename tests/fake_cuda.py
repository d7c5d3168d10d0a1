"""Fake ``cuda:0`` tensors on a CPU machine, for device-correctness tests.

torch's ``FakeTensorMode`` gives tensors a device, a dtype and a shape but no
values, and checks devices op by op as CUDA does ("Expected all tensors to be
on the same device"). A model is built on the CPU, as mmengine's Runner builds
it, and then moved as ``model.to('cuda')`` moves a module: parameters and
registered buffers move, plain tensor attributes stay on the CPU. (Building
under ``torch.device('cuda')`` would hide that class of bug: factory calls
without a device would land on CUDA too.)

What fake tensors cannot run, and the tests name instead of passing:
reading a value (``.item()``, ``torch.equal``, ``lstsq``: the mode raises, as
a GPU would synchronize), backward through the layers, ops without a fake
kernel (``torch.fake_quantize_per_channel_affine``) and ``torch.compile``
inside the mode. tests/test_cuda.py runs those on a GPU.
"""
import contextlib
from typing import Iterator

import torch
import torch.cuda.amp.common
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@contextlib.contextmanager
def fake_cuda(monkeypatch) -> Iterator[FakeTensorMode]:
    """The mode, with ``torch.autocast('cuda')`` working as on a GPU.

    Real CPU tensors may enter the mode, as a checkpoint mapped to the CPU
    enters a GPU model; such a tensor keeps its device there, so mixing it
    with a CUDA one still fails.
    """
    # torch.autocast turns itself off where no CUDA is present.
    monkeypatch.setattr(torch.cuda.amp.common, 'amp_definitely_not_available', lambda: False)
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            yield mode
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)


def to_fake_cuda(model: nn.Module, mode: FakeTensorMode) -> nn.Module:
    """``model.to('cuda')`` inside ``mode``: parameters and buffers only."""
    return model._apply(lambda tensor: mode.from_tensor(tensor).to('cuda'))


def devices_and_dtypes(model: nn.Module) -> set:
    return {(tensor.device.type, tensor.dtype) for tensor in
            [*model.parameters(), *model.buffers()] if tensor.is_floating_point()}


# Ops that need a tensor's values on the host: on a GPU each one waits for the
# device; the fake mode cannot run them at all.
VALUE_READS = ('_local_scalar_dense', 'equal', 'is_nonzero', 'nonzero', 'linalg_lstsq',
               '_linalg_svd')


class ValueReads(TorchDispatchMode):
    """Records the devices of the tensors every value-reading op gets.

    Entered inside a ``FakeTensorMode`` it sees each op first and passes it on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in VALUE_READS:
            tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            self.reads.append((func.overloadpacket.__name__, {t.device.type for t in tensors}))
        return func(*args, **(kwargs or {}))
