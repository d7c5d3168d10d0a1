"""The plugin mechanism and checkpoint loading on the installed OpenMMLab stack."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn

import mmorepa  # noqa: F401  (installs the checkpoint allowlist)

SCOPES = {'mmpretrain': 'mmpretrain.registry', 'mmdet': 'mmdet.registry',
          'mmseg': 'mmseg.registry'}


@pytest.mark.parametrize('scope', sorted(SCOPES))
def test_custom_imports_registers_modules_under_each_default_scope(scope, tmp_path):
    config = tmp_path / 'plugin.py'
    config.write_text(textwrap.dedent(f"""
        custom_imports = dict(imports=['mmorepa'], allow_failed_imports=False)
        default_scope = '{scope}'
        backbone = dict(type='OREPAResNet', depth=18, out_indices=(3, ))
        """))
    # A fresh interpreter, so only the config's custom_imports can register mmorepa.
    script = textwrap.dedent(f"""
        import sys
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        assert 'mmorepa' not in sys.modules
        cfg = Config.fromfile({str(config)!r})
        assert 'mmorepa' in sys.modules
        init_default_scope(cfg.default_scope)
        from {SCOPES[scope]} import MODELS
        from mmcv.cnn import build_conv_layer
        backbone = MODELS.build(cfg.backbone)
        conv = build_conv_layer(dict(type='OREPA'), 8, 8, 3, padding=1)
        print(type(backbone).__name__, type(conv).__name__)
        """)
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ['OREPAResNet', 'OREPAConv2d']


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=(out.squeeze(1) - labels).square().mean())
        return out


def toy_runner(work_dir, **kwargs):
    data = [(torch.randn(2), torch.randn(())) for _ in range(8)]
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=4, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=kwargs.pop('max_epochs', 2)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), **kwargs)


def test_runner_checkpoints_load_with_weights_only(tmp_path):
    runner = toy_runner(tmp_path / 'train')
    runner.train()
    path = tmp_path / 'train' / 'epoch_2.pth'
    # Plain torch.load stays weights-only (torch's default) and now accepts it.
    checkpoint = torch.load(path)
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    # A fresh process has built no HistoryBuffer yet (resume, tools/test.py).
    fresh = subprocess.run([sys.executable, '-c', textwrap.dedent(f"""
        import torch, mmorepa
        checkpoint = torch.load({str(path)!r})
        print(type(checkpoint['message_hub']['log_scalars']['train/loss']).__name__)
        """)], capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert fresh.stdout.split()[-1] == 'HistoryBuffer'
    model = ToyModel()
    load_checkpoint(model, str(path))
    assert torch.equal(model.linear.weight, runner.model.linear.weight)
    # Resume through the Runner: continues at epoch 2 with the saved weights.
    resumed = toy_runner(tmp_path / 'resume', max_epochs=3, resume=True, load_from=str(path))
    resumed.train()
    assert resumed.epoch == 3
    assert resumed.message_hub.get_scalar('train/loss').mean() > 0


class SystemCall:

    def __reduce__(self):
        return os.system, ('touch pwned',)


class GetattrEscape:

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


@pytest.mark.parametrize('payload', [SystemCall(), GetattrEscape()],
                         ids=['os.system', 'getattr'])
def test_checkpoint_with_code_is_still_refused(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(ToyModel(), str(path))
    assert not (tmp_path / 'pwned').exists()
