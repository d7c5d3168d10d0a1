"""The GPU check and the mixed-precision gradient tool, on the CPU: argument
handling, the refusal without a GPU, and a float16 gradient check of a small
OREPA network (its kernel products' backward included)."""
import pytest
import torch

from tools import gpu_check
from tools.analysis import amp_gradients
from tools.analysis.benchmark_training import parse_args as benchmark_args


def test_gpu_check_without_a_gpu_says_so_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert gpu_check.main(['--steps', '2']) == 2
    assert 'no CUDA device' in capsys.readouterr().err


@pytest.mark.parametrize('argv,named', [(['--steps', '0'], '--steps'),
                                        (['--rounds', '-1'], '--rounds'),
                                        (['--batch', 'x'], '--batch')])
def test_gpu_check_refuses_bad_counts_by_name(argv, named, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(argv)
    assert named in capsys.readouterr().err


def test_benchmark_on_cuda_needs_a_warmup_step(capsys):
    """cuDNN tunes itself in the first steps: never inside the timings."""
    with pytest.raises(SystemExit):
        benchmark_args(['--device', 'cuda', '--warmup', '0'])
    assert '--warmup must be >= 1 with --device cuda' in capsys.readouterr().err


def test_float16_gradients_of_a_small_orepa_network(tmp_path, capsys):
    """float16 on the CPU: the OREPA network keeps finite gradients at a loss
    scale no smaller than the plain network's, pointing where float32's do."""
    out = tmp_path / 'amp.json'
    assert amp_gradients.main(['--arch', 'resnet18', '--batch', '4', '--size', '32',
                               '--json', str(out)]) == 0
    import json
    results = json.loads(out.read_text())['results']
    plain, orepa = results['plain'], results['orepa']
    assert orepa['loss_scale'] >= plain['loss_scale'] > 0
    # Measured here: plain 0.990, OREPA 0.907 (its least aligned layer 0.886): a
    # random start at 32x32, where layer4 sees 1x1 maps (docs/recipes.md, AMP).
    assert orepa['cosine'] >= 0.85 and orepa['min_layer_cosine'] >= 0.8
    assert 'finite at loss scale' in capsys.readouterr().out
