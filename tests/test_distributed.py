"""Two-process training through tools/dist_train.sh (torchrun, gloo on CPU), and resume."""
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
