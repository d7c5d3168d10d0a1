"""The training-cost benchmark: a tiny run end to end, its pieces, its argument checks.

No timing assertions: a unit test on a shared machine makes no performance claim.
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from mmorepa.benchmark import measure, models, report, suite, worker
from mmorepa.layers import GeneratedKernelConv2d
from tools.analysis.benchmark_training import parse_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'tools', 'analysis', 'benchmark_training.py')
TINY = ['--archs', 'resnet18', '--variants', 'dbb', 'orepa', 'orepa-reference', '--batch', '2',
        '--size', '32', '--rounds', '2', '--memory-rounds', '1', '--warmup', '1',
        '--memory-steps', '1', '--threads', '1']


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('benchmark')
    done = subprocess.run([sys.executable, SCRIPT, *TINY, '--out', str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / 'benchmark.json') as file:
        return json.load(file), done.stdout, out


def test_every_variant_is_measured_against_the_first(tiny_run):
    report, stdout, out = tiny_run
    summary, runs = report['summary'], report['runs']
    expected = {'resnet18': ['plain', 'dbb', 'orepa', 'orepa-reference']}
    assert {arch: list(entry['train']) for arch, entry in summary.items()} == expected
    for arch, entry in summary.items():
        plain = entry['train']['plain']
        assert plain['time_ratio'] == dict(min=1.0, median=1.0, max=1.0)
        assert plain['memory_ratio'] == dict(min=1.0, median=1.0, max=1.0)
        for row in entry['train'].values():
            assert row['rounds'] == 2 and row['step_s'] > 0 and row['peak_memory_mb'] > 0
            stats = row['time_ratio']
            assert stats['min'] <= stats['median'] <= stats['max']
            assert row['params_train'] >= row['params_deploy'] == plain['params_deploy']
        infer = entry['infer']
        assert infer['params'] == infer['stock_params']  # squeezed = stock architecture
        assert infer['cached_throughput_ratio']['median'] > 0  # train form, cached kernels
        # Time: every variant in one process; memory: a fresh one per run.
        assert len({runs[arch]['time']['pid']}) == 1
        pids = [run['pid'] for variant in runs[arch]['memory'].values() for run in variant]
        assert len(set(pids)) == len(pids) == len(expected[arch])  # --memory-rounds 1
    assert 'kernels_s' in summary['resnet18']['train']['orepa']
    assert 'kernels_s' not in summary['resnet18']['train']['orepa-reference']
    assert 'round 2/2' in stdout and 'memory round 1/1' in stdout
    assert 'input resnet18 2x3x32x32' in stdout
    assert (out / 'benchmark.png').stat().st_size > 0
    # Batch 2 at 32x32: layer4 sees 1x1 maps, where 'auto' moves the 1x1-kxk branch.
    feature, total, _ = summary['resnet18']['train']['orepa']['placement']['branches']['1x1_kxk']
    assert 0 < feature < total == 16
    assert 'Branch placement in a training step' in stdout and '1x1_kxk ' in stdout


@pytest.mark.parametrize('variant, moved', [('orepa', True), ('orepa-kernel', False),
                                            ('orepa-feature', True)])
def test_branch_placement_counts_what_a_step_ran(variant, moved):
    model = models.build('resnet18', variant)
    step = models.training_step(model, 2, 32, torch.device('cpu'))
    placement = measure.branch_placement(model, step)
    counts = placement['branches']
    assert set(counts) == {'origin', 'avg', 'prior', '1x1_kxk', '1x1', 'dws'}
    assert all(total == 16 for _, total, _ in counts.values())
    assert (counts['1x1_kxk'][0] > 0) == moved
    if variant == 'orepa-feature':
        assert all(feature == total for feature, total, _ in counts.values())


def test_branch_placement_counts_multiply_adds():
    """The cheaper side where 'auto' moved a branch, the folded side elsewhere;
    the convs' multiply-adds are those of the plain network's convs at the
    re-param layers' places, counted by hooks."""
    placements, built = {}, {}
    for variant in ('orepa', 'orepa-kernel'):
        model = built[variant] = models.build('resnet18', variant)
        placements[variant] = measure.branch_placement(
            model, models.training_step(model, 2, 32, torch.device('cpu')))
    auto, kernel = (placements[v]['branches'] for v in ('orepa', 'orepa-kernel'))
    assert auto['1x1_kxk'][0] > 0 and all(kernel[name][0] == 0 for name in kernel)
    for name, (moved, _, macs) in auto.items():
        assert macs < kernel[name][2] if moved else macs == kernel[name][2]
    reparam = {name for name, module in built['orepa'].named_modules()
               if isinstance(module, GeneratedKernelConv2d)}
    plain, macs = models.build('resnet18', 'plain'), []

    def count(conv, args, out):
        macs.append(out.numel() * conv.in_channels // conv.groups * math.prod(conv.kernel_size))

    for name, module in plain.named_modules():
        if name in reparam:
            module.register_forward_hook(count)
    plain(torch.zeros(2, 3, 32, 32))
    assert len(macs) == len(reparam)
    assert placements['orepa']['conv_macs'] == placements['orepa-kernel']['conv_macs'] == sum(macs)


def test_sizes_curve_is_drawn(tiny_run, tmp_path):
    summary = tiny_run[0]['summary']
    path = tmp_path / 'sizes.png'
    report.plot_sizes({32: summary, 64: summary}, str(path))
    assert path.stat().st_size > 0


def test_reference_variant_computes_the_same_kernels():
    """orepa-reference differs in cost only: same parameters, same outputs."""
    torch.manual_seed(0)
    ours = models.build('resnet18', 'orepa').eval()
    torch.manual_seed(0)
    reference = models.build('resnet18', 'orepa-reference').eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        mine, theirs = ours(x), reference(x)
    assert ((mine - theirs).abs().max() / mine.abs().max()) <= 1e-5


@pytest.mark.parametrize('arch, variants, options', [
    ('faster-rcnn-r50', ['plain', 'orepa'], dict(channels_last=True)),
    ('repvgg-a0', ['plain', 'repvgg', 'orepa-vgg', 'orepa-vgg-reference'], dict(amp=True)),
])
def test_other_archs_and_options_run(arch, variants, options, monkeypatch):
    """The Faster R-CNN step, RepVGG, channels_last and autocast in tiny time jobs
    (mmcv's CPU RoIAlign takes no bfloat16, so no autocast for the detector here)."""
    monkeypatch.setattr(models, 'DETECTION_SHAPE', (1, 3, 64, 96))
    job = dict(dict(amp=False, channels_last=False), kind='time', arch=arch,
               variants=variants, batch=2, size=32, rounds=1, warmup=0, threads=1,
               device='cpu', **options)
    result = worker.run(job)['variants']
    assert list(result) == variants and result[variants[-1]]['params_deploy'] == \
        result['plain']['params_deploy']
    assert all(len(entry['times_s']) == 1 for entry in result.values())


def test_report_names_the_detectors_fixed_input():
    """--batch and --size do not apply to the detector: the header says what it ran."""
    ratio = dict(min=1.0, median=1.0, max=1.0)
    row = dict(params_train=1, params_deploy=1, step_s=1.0, time_ratio=ratio,
               peak_memory_mb=1.0, memory_ratio=ratio)
    summary = {'faster-rcnn-r50': dict(train=dict(plain=row)),
               'resnet18': dict(train=dict(plain=row))}
    settings = dict(batch=32, size=224, device='cpu', threads=2, amp=False, rounds=1,
                    memory_rounds=1, warmup=0)
    head = report.format_tables(summary, settings).splitlines()[0]
    detector = 'x'.join(map(str, models.DETECTION_SHAPE))
    assert f'input faster-rcnn-r50 {detector}, resnet18 32x3x224x224,' in head


def _fake_worker(monkeypatch, script):
    monkeypatch.setattr(suite, 'worker_command', lambda job: [sys.executable, '-c', script])


def test_worker_that_logs_much_to_stdout_does_not_stall(monkeypatch):
    """A detector's build logs to stdout; the suite must drain it (it once
    deadlocked with a full pipe while reading only stderr)."""
    # 2 MB, far more than a pipe holds (64 KB on Linux).
    _fake_worker(monkeypatch, "import json, sys\n"
                 "print('a log line of the detector build\\n' * 60000)\n"
                 "print('round 1/1: done', file=sys.stderr)\n"
                 "print(json.dumps(dict(result=dict(answer=42))))\n")
    lines = []
    assert suite.spawn(dict(arch='x', kind='time'), lines.append) == dict(answer=42)
    assert lines == ['  x time: round 1/1: done']


def test_failing_worker_raises_with_its_stderr(monkeypatch):
    _fake_worker(monkeypatch, "import sys\nprint('worker broke: bad shape', file=sys.stderr)\n"
                 "sys.exit(3)\n")
    with pytest.raises(RuntimeError, match=r'(?s)exit 3.*worker broke: bad shape'):
        suite.spawn(dict(arch='x', kind='time'), lambda line: None)


def test_gpu_measurements_synchronize_and_read_the_allocator(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda device=None: calls.append('sync'))
    monkeypatch.setattr(torch.cuda, 'reset_peak_memory_stats',
                        lambda device=None: calls.append('reset'))
    monkeypatch.setattr(torch.cuda, 'max_memory_allocated', lambda device=None: 3 * 2**20)
    cuda = torch.device('cuda')
    assert measure.timed(lambda: calls.append('step'), cuda) >= 0
    measure.reset_peak_memory(cuda)
    assert measure.peak_memory_mb(cuda) == 3.0
    assert calls == ['sync', 'step', 'sync', 'sync', 'reset', 'sync']
    assert measure.peak_memory_mb(torch.device('cpu')) > 0


@pytest.mark.parametrize('arguments, message', [
    (['--batch', '0'], '--batch must be a positive int'),
    (['--rounds', '0'], '--rounds must be a positive int'),
    (['--memory-rounds', '0'], '--memory-rounds must be a positive int'),
    (['--size', '16'], '--size must be >= 32'),
    (['--sizes', '32', '16'], '--sizes must be >= 32'),
    (['--warmup', '-1'], '--warmup must be >= 0'),
    (['--variants', 'acnet'], "--variants ['acnet'] are not variants"),
    (['--archs', 'vgg16'], "invalid choice: 'vgg16'"),
    (['--device', 'cuda'], 'no CUDA device'),
])
def test_bad_arguments_are_refused_by_name(arguments, message, capsys):
    if arguments[0] == '--device' and torch.cuda.is_available():
        pytest.skip('a GPU is present')
    with pytest.raises(SystemExit) as exit_info:
        parse_args(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
