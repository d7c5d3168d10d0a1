"""tools/analysis/benchmark_training.py: a tiny run end to end, and its argument checks.

No timing assertions: a unit test on a shared machine makes no performance claim.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'tools', 'analysis', 'benchmark_training.py')
TINY = ['--archs', 'resnet18', 'repvgg-a0', '--batch', '2', '--size', '32', '--steps', '2',
        '--warmup', '1', '--repeats', '1', '--threads', '1']
EXPECTED_VARIANTS = {
    'resnet18': dict(train=['plain', 'dbb', 'orepa'], infer=['stock', 'orepa']),
    'repvgg-a0': dict(train=['plain', 'repvgg', 'orepa-vgg'], infer=['stock', 'orepa-vgg']),
}


def load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_training', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('benchmark')
    done = subprocess.run([sys.executable, SCRIPT, *TINY, '--out', str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / 'benchmark.json') as file:
        return json.load(file), done.stdout, out


def test_every_variant_is_measured_with_plain_as_reference(tiny_run):
    report, _, _ = tiny_run
    summary = report['summary']
    assert set(summary) == set(EXPECTED_VARIANTS)
    for arch, modes in EXPECTED_VARIANTS.items():
        train = summary[arch]['train']
        assert list(train) == modes['train']
        for result in train.values():
            assert result['median_s'] > 0 and result['peak_memory_mb'] > 0
            assert result['params_train'] >= result['params_deploy'] > 0
        assert train['plain']['time_ratio'] == 1.0
        assert train['plain']['memory_ratio'] == 1.0
        infer = summary[arch]['infer']
        assert list(infer) == modes['infer']
        assert all(result['images_per_s'] > 0 for result in infer.values())
        assert infer['stock']['throughput_ratio'] == 1.0
        # The squeezed model is the stock architecture: same parameter count.
        squeezed = modes['infer'][1]
        assert infer[squeezed]['params_deploy'] == infer['stock']['params_deploy']
        assert train[squeezed]['params_deploy'] == train['plain']['params_deploy']
        # The OREPA variant alone says where its time goes.
        breakdown = {variant for variant, result in train.items()
                     if 'kernel_generation_s' in result}
        assert breakdown == {squeezed}
        result = train[squeezed]
        assert result['products_s'] > 0 and result['kernel_generation_s'] > 0
        assert result['kernel_generation_share'] == pytest.approx(
            result['kernel_generation_s'] / train['plain']['median_s'])


def test_runs_progress_and_outputs(tiny_run):
    report, stdout, out = tiny_run
    assert len(report['runs']) == 10  # 2 archs x (3 train + 2 infer) x 1 round
    assert report['settings']['batch'] == 2 and report['settings']['threads'] == 1
    assert stdout.count('round 1/1') == 10  # one progress line per measurement
    # Each training variant has a process of its own; the inference pair of an
    # arch shares one, timed batch by batch.
    train_pids = [run['pid'] for run in report['runs'] if run['mode'] == 'train']
    assert len(set(train_pids)) == len(train_pids) == 6
    for arch in EXPECTED_VARIANTS:
        pair = [run for run in report['runs'] if run['arch'] == arch and run['mode'] == 'infer']
        assert len(pair) == 2 and pair[0]['pid'] == pair[1]['pid']
        assert pair[0]['pid'] not in train_pids
        assert len(pair[0]['times_s']) == len(pair[1]['times_s']) == 2
    assert 'Training step: batch 2, 32x32' in stdout
    assert stdout.count('of which matrix products') == 2  # one line per OREPA variant
    assert (out / 'benchmark.png').stat().st_size > 0


@pytest.mark.parametrize('arguments, message', [
    (['--archs', 'resnet19'], "argument --archs: invalid choice: 'resnet19'"),
    (['--size', '16'], '--size must be >= 32'),
    (['--batch', '0'], '--batch must be a positive int'),
    (['--warmup', '-1'], '--warmup must be >= 0'),
    (['--device', 'tpu'], "argument --device: invalid choice: 'tpu'"),
])
def test_bad_arguments_are_refused_by_name(capsys, arguments, message):
    tool = load_tool()
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_worker_refuses_a_variant_of_another_family(capsys):
    tool = load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(['--worker', '--archs', 'resnet18', '--variant', 'repvgg',
                         '--mode', 'train'])
    assert "--variant for resnet18 in mode 'train' must be one of" in capsys.readouterr().err
