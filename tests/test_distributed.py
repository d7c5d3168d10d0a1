"""Two-process training through tools/dist_train.sh (torchrun: NCCL with a GPU per
rank, else gloo on the CPU), and resume."""
import os
import subprocess
import sys

import pytest
import torch

import tiny_runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(config, work_dir, *extra, processes=2, port=29511):
    env = dict(os.environ, PORT=str(port), PYTHON=sys.executable,
               PYTHONPATH=os.path.join(ROOT, 'tests'), OMP_NUM_THREADS='1')
    if torch.cuda.device_count() < processes:  # one GPU per rank, or gloo on the CPU
        env['CUDA_VISIBLE_DEVICES'] = ''
    command = ['bash', os.path.join(ROOT, 'tools', 'dist_train.sh'), config, str(processes),
               '--work-dir', work_dir, *extra]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_two_processes_end_with_equal_weights_and_resume(tmp_path):
    cfg = tiny_runs.classification('configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py',
                                   str(tmp_path / 'data'), str(tmp_path / 'work'))
    cfg.custom_imports.imports.append('rank_weights_hook')
    cfg.custom_hooks.append(dict(type='SaveRankWeightsHook'))
    cfg.train_dataloader.batch_size = 2
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    work = str(tmp_path / 'work')

    log = train(config, work)
    assert 'Distributed training: True' in log
    ranks = [torch.load(os.path.join(work, f'rank{r}.pth')) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    assert os.path.exists(os.path.join(work, 'epoch_1.pth'))
    assert os.path.exists(os.path.join(work, 'epoch_1_deploy.pth'))

    log = train(config, work, '--resume', '--cfg-options', 'train_cfg.max_epochs=2', port=29512)
    assert 'resumed epoch: 1' in log
    assert os.path.exists(os.path.join(work, 'epoch_2.pth'))
    resumed = torch.load(os.path.join(work, 'epoch_2.pth'))
    assert resumed['meta']['epoch'] == 2


@pytest.mark.slow
def test_two_processes_train_on_the_int8_grid(tmp_path):
    """The QAT switch under DDP: the ranks stay equal and the export carries the
    INT8 scales, on which the deployed kernels lie."""
    cfg = tiny_runs.classification('configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py',
                                   str(tmp_path / 'data'), str(tmp_path / 'work'))
    cfg.custom_imports.imports.append('rank_weights_hook')
    cfg.custom_hooks.append(dict(type='SaveRankWeightsHook'))
    cfg.model.backbone.quantize_kernels = True
    cfg.train_dataloader.batch_size = 2
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    work = str(tmp_path / 'work')
    train(config, work, port=29513)
    ranks = [torch.load(os.path.join(work, f'rank{r}.pth')) for r in (0, 1)]
    assert all(torch.equal(ranks[0][key], ranks[1][key]) for key in ranks[0])
    deploy = torch.load(os.path.join(work, 'epoch_1_deploy.pth'), weights_only=True)
    scales = deploy['meta']['mmorepa']['int8_weight_grid']['scales']
    assert len(scales) == 17
    # The stock ResNet holds the kernel with the norm divided out; folded back
    # it lies on the grid of its scales.
    state = deploy['state_dict']
    for name, scale in scales.items():
        norm = name.replace('conv', 'bn')
        fold = state[f'{norm}.weight'] / torch.sqrt(state[f'{norm}.running_var'] + 1e-5)
        steps = state[f'{name}.weight'] * fold.view(-1, 1, 1, 1) / scale.view(-1, 1, 1, 1)
        assert (steps - steps.round()).abs().max() < 1e-3, name
