"""The paper's analyses as tools: branch similarity (Fig. 7), optimization
equivalence (sec. 3.4) and the post-addition norm (Table 3), on tiny models.

No result of an analysis is asserted: only what must hold whatever the
numbers (a branch is parallel to itself, an identity the algebra guarantees,
the files and their fields)."""
import json

import pytest
import torch
from mmengine.config import Config
from torch import nn

import mmorepa  # noqa: F401  (registers the plugin)
from helpers import randomize_scales
from mmorepa.analysis.branch_cosines import (branch_contributions, cosine_matrix,
                                             mean_off_diagonal_abs, mean_over_layers,
                                             model_similarities)
from mmorepa.analysis.demo_data import ensure_demo_digits, repo_path
from mmorepa.analysis.json_output import json_safe
from mmorepa.analysis.post_addition_norm import first_non_finite, remove_post_addition_norms
from mmorepa.analysis.seeds import (exceeds_spread, format_spread, seed_list, seed_work_dir,
                                    spread)
from mmorepa.engine import build_model
from mmorepa.layers import OREPAConv2d
from tools.analysis import branch_similarity, int8_table, optimization_equivalence
from tools.analysis import post_addition_norm

CONFIG = 'configs/imagenet/orepa-resnet18_8xb32-120e_in1k.py'
# OREPA-ResNet-18 four channels wide (a stem of 24: wide enough for the linear deep
# stem, which needs 3 x 7 x 7 <= 9 x stem channels), a few images, one batch per epoch.
TINY = {'model.backbone.base_channels': 4, 'model.backbone.stem_channels': 24,
        'model.head.in_channels': 32, 'train_dataloader.dataset.indices': 8,
        'val_dataloader.dataset.indices': 8, 'train_dataloader.batch_size': 8,
        'val_dataloader.batch_size': 8, 'randomness.deterministic': False}
TINY_OPTIONS = ['--cfg-options'] + [f'{key}={value}' for key, value in TINY.items()]
# OREPA-ResNet-18: 16 OREPA 3x3 convs and a stem of 3 generators, six branches each.
RESNET18_LAYERS = 19
BRANCHES = ('origin', 'avg', 'prior', '1x1_kxk', '1x1', 'dws')


def read_json(path):
    with open(path) as file:
        return json.load(file)


def tiny_model():
    cfg = Config.fromfile(repo_path(CONFIG))
    cfg.merge_from_dict({k: v for k, v in TINY.items() if k.startswith('model.')})
    torch.manual_seed(0)
    return cfg, build_model(cfg)


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    return ensure_demo_digits(str(tmp_path_factory.mktemp('demo') / 'digits'))


# Branch similarity ---------------------------------------------------------


def test_a_branch_is_parallel_to_itself_and_cosines_are_bounded():
    torch.manual_seed(0)
    layer = randomize_scales(OREPAConv2d(4, 6, 3))
    contributions = branch_contributions(layer.branches)
    assert tuple(contributions) == BRANCHES
    matrix = cosine_matrix(list(contributions.values()))
    assert matrix.dtype == torch.float64
    assert torch.allclose(matrix.diagonal(), torch.ones(6, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(matrix, matrix.T, atol=1e-15)
    assert matrix.abs().max() <= 1 + 1e-12
    kernel = contributions['origin']
    assert torch.allclose(cosine_matrix([kernel, 2 * kernel, -kernel]),
                          torch.tensor([[1., 1, -1], [1, 1, -1], [-1, -1, 1]],
                                       dtype=torch.float64), atol=1e-12)


def test_contributions_are_the_scaled_kernels_that_sum_to_the_layer_kernel():
    torch.manual_seed(0)
    layer = randomize_scales(OREPAConv2d(4, 6, 3)).double()
    total = sum(branch_contributions(layer.branches).values())
    assert torch.allclose(total, layer.squeezed_kernel()[0], rtol=0, atol=1e-12)


def test_a_zero_contribution_has_no_direction():
    torch.manual_seed(0)
    layers = {'started': (BRANCHES, cosine_matrix(list(
        branch_contributions(OREPAConv2d(4, 6, 3).branches).values())))}
    matrix = layers['started'][1]
    prior = BRANCHES.index('prior')  # published start: scale 0.0
    assert matrix[prior].isnan().all() and matrix[:, prior].isnan().all()
    assert not matrix[0, 1].isnan()
    # A NaN in one layer is left out of the mean; NaN only where every layer has it.
    other = torch.zeros(6, 6, dtype=torch.float64)
    layers['other'] = (BRANCHES, other)
    mean = mean_over_layers(layers)[BRANCHES]
    assert mean['layers'] == 2 and not mean['cosine'].isnan().any()
    assert torch.equal(mean['cosine'][prior], other[prior])
    assert 0 <= mean_off_diagonal_abs(matrix) <= 1


def test_a_positive_scalar_scale_leaves_cosines_unchanged():
    """Per branch, a positive scalar only stretches the kernel; a vector scale
    weighs the output channels and changes the directions."""
    cosines = {}
    for scaling in ('scalar', None, 'vector'):
        torch.manual_seed(0)
        layer = OREPAConv2d(4, 6, 3, scaling=scaling)
        if scaling is not None:
            with torch.no_grad():
                layer.branches.scales.uniform_(0.5, 2.0)
        cosines[scaling] = cosine_matrix(list(branch_contributions(layer.branches).values()))
    assert torch.allclose(cosines['scalar'], cosines[None], atol=1e-12)
    assert not torch.allclose(cosines['vector'], cosines[None], atol=1e-3)


def test_every_orepa_layer_of_the_model_is_compared():
    _, model = tiny_model()
    layers = model_similarities(model)
    assert len(layers) == RESNET18_LAYERS
    assert 'conv1.generators.0' in layers and 'layer4.1.conv2' in layers
    assert all(branches == BRANCHES for branches, _ in layers.values())
    with pytest.raises(ValueError, match='no OREPA layer'):
        model_similarities(nn.Conv2d(3, 4, 3))


def test_checkpoint_and_run_forms_write_the_json_and_the_pictures(tmp_path, capsys):
    cfg, model = tiny_model()
    run = tmp_path / 'run'
    run.mkdir()
    for epoch in (2, 1, 10):  # listed out of order on purpose
        with torch.no_grad():
            model.backbone.layer1[0].conv1.branches.scales.mul_(1.5)
        torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=epoch)),
                   run / f'epoch_{epoch}.pth')
    (run / 'epoch_1_deploy.pth').write_bytes(b'not read')
    out = tmp_path / 'out'
    config = repo_path(CONFIG)
    assert branch_similarity.main([config, str(run), '--out', str(out), *TINY_OPTIONS]) == 0
    report = read_json(out / 'branch_similarity.json')
    assert {'settings', 'machine', 'checkpoints'} <= set(report)
    assert {'processor', 'cores', 'torch', 'date'} <= set(report['machine'])
    assert [c['step'] for c in report['checkpoints']] == [1, 2, 10]
    last = report['checkpoints'][-1]
    assert len(last['layers']) == RESNET18_LAYERS
    assert last['branches'] == list(BRANCHES) and len(last['mean_cosine']) == 6
    assert last['means'][0]['layers'] == RESNET18_LAYERS
    assert 0 <= last['mean_off_diagonal_abs'] <= 1
    for name in ('branch_similarity.png', 'branch_similarity_over_run.png'):
        assert (out / name).stat().st_size > 0
    single = tmp_path / 'single'
    assert branch_similarity.main([config, str(run / 'epoch_1.pth'), '--out', str(single),
                                   *TINY_OPTIONS]) == 0
    assert len(read_json(single / 'branch_similarity.json')['checkpoints']) == 1
    # A squeezed checkpoint has no branches: refused by name.
    model.backbone.switch_to_deploy()
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'squeezed.pth')
    capsys.readouterr()
    assert branch_similarity.main([config, str(tmp_path / 'squeezed.pth'), '--out',
                                   str(single), *TINY_OPTIONS]) == 1
    assert 'no branches' in capsys.readouterr().err
    assert branch_similarity.main([config, str(tmp_path), '--out', str(single)]) == 1


def test_branch_similarity_refuses_mixed_or_missing_arguments(capsys):
    for argv in ([], ['config.py'], ['--compare-scalings', 'config.py'],
                 ['--compare-scalings', '--epochs', '0'],
                 ['--compare-scalings', '--scalings', 'diagonal']):
        with pytest.raises(SystemExit):
            branch_similarity.parse_args(argv)
    assert '--scalings' in capsys.readouterr().err


@pytest.mark.slow
def test_compare_scalings_trains_each_ablation_and_records_every_epoch(tmp_path, digits):
    out = tmp_path / 'out'
    assert branch_similarity.main(['--compare-scalings', '--scalings', 'vector', 'none',
                                   '--epochs', '1', '--data-root', digits, '--out', str(out),
                                   *TINY_OPTIONS]) == 0
    report = read_json(out / 'scalings.json')
    assert list(report['variants']) == ['vector', 'none']
    for name, variant in report['variants'].items():
        start, trained = variant['records']
        assert (start['epoch'], trained['epoch']) == (0, 1)
        # The branches' changes since the start: none at the start.
        assert start['moved'] is None
        assert 0 <= trained['moved']['mean_off_diagonal_abs'] <= 1
        assert len(trained['moved']['layers']) == RESNET18_LAYERS
        assert 'accuracy/top1' in variant['val_metrics']
        assert (out / f'scaling_{name}.png').stat().st_size > 0
    # Without scales every branch has a direction from the start (no zero prior).
    none_start = report['variants']['none']['records'][0]['mean_cosine']
    assert all(value is not None for row in none_start for value in row)
    assert (out / 'scalings.png').stat().st_size > 0


# Optimization equivalence ----------------------------------------------------


@pytest.mark.parametrize('scaling, branches', [('vector', 4), ('scalar', 2)])
def test_optimization_equivalence_identities_hold_in_float64(tmp_path, scaling, branches):
    """Identities the algebra guarantees, to float64 rounding; the differences
    the paper states are visibly non-zero."""
    out = tmp_path / 'out'
    assert optimization_equivalence.main(['--scaling', scaling, '--branches', str(branches),
                                          '--out', str(out)]) == 0
    report = read_json(out / 'optimization_equivalence.json')
    assert {'settings', 'machine', 'updates', 'comparisons', 'symmetry', 'statements'} <= \
        set(report)
    assert report['start_kernel_difference'] <= 1e-14
    diff = {(c['update'], c['reference']): c['relative_difference']
            for c in report['comparisons']}
    # Exact, to float64 rounding: (b) is (a) with the kernel lr x n, and only the
    # branch sum matters; (d) is a plain conv with the lr x n; equal starts are (a)
    # with sqrt(n) times the scale and the kernel.
    assert diff['b', 'a, n x kernel lr'] <= 1e-12
    assert diff['b', 'b, another split'] <= 1e-12
    assert diff['d', 'plain conv, n x lr'] <= 1e-12
    assert diff['c, equal starts', 'a, sqrt(n) g and sqrt(n) W'] <= 1e-12
    assert diff['b', 'a'] > 1e-6
    assert diff['c', 'a'] > 1e-6 and diff['c', 'a, n x kernel lr'] > 1e-6
    span = {name: row['outside_span'] for name, row in report['updates'].items()}
    assert max(span['a'], span['b'], span['d'], span['c, equal starts']) <= 1e-12
    assert span['c'] > 1e-6
    assert report['symmetry']['equal_starts_branch_spread'] == [0.0, 0.0, 0.0]
    assert len(report['statements']) == 5
    assert all(s['verdict'] != 'does not hold' for s in report['statements'])
    assert (out / 'optimization_equivalence.png').stat().st_size > 0


def test_optimization_equivalence_refuses_bad_arguments():
    for argv in (['--branches', '1'], ['--kernel-size', '2'], ['--lr', '0'],
                 ['--scaling', 'none'], ['--out-channels', '-1']):
        with pytest.raises(SystemExit):
            optimization_equivalence.parse_args(argv)


# Post-addition norm -----------------------------------------------------------


def test_only_the_norms_after_orepa_convs_are_removed():
    _, model = tiny_model()
    shortcut = model.backbone.layer2[0].downsample[1]
    removed = remove_post_addition_norms(model)
    assert len(removed) == 1 + 16  # the stem, then two per basic block
    assert 'backbone.bn1' in removed and 'backbone.layer4.1.bn2' in removed
    assert isinstance(model.backbone.layer1[0].norm1, nn.Identity)
    assert model.backbone.layer2[0].downsample[1] is shortcut  # a plain conv's norm stays
    assert model(torch.randn(2, 3, 32, 32), mode='tensor').shape[0] == 2
    with pytest.raises(ValueError, match='no post-addition norm'):
        remove_post_addition_norms(model)


def test_first_non_finite_iteration():
    finite = dict(loss=1.0, grad_norm=2.0)
    assert first_non_finite([finite, finite]) is None
    assert first_non_finite([finite, dict(loss=float('nan'), grad_norm=1.0), finite]) == 2
    assert first_non_finite([dict(loss=1.0, grad_norm=float('inf'))]) == 1
    assert json_safe({'a': float('nan'), 'b': (1.0, float('inf'))}) == {'a': None,
                                                                        'b': [1.0, None]}


@pytest.mark.slow
def test_post_addition_norm_trains_both_variants_from_one_seed(tmp_path, digits):
    out = tmp_path / 'out'
    assert post_addition_norm.main(['--epochs', '2', '--data-root', digits, '--out', str(out),
                                    *TINY_OPTIONS]) == 0
    report = read_json(out / 'post_addition_norm.json')
    runs = report['runs']
    assert list(runs) == [post_addition_norm.WITH_NORM, post_addition_norm.WITHOUT_NORM]
    with_norm, without = runs.values()
    assert with_norm['removed_norms'] == [] and len(without['removed_norms']) == 17
    for run in runs.values():
        assert run['iterations'] == len(run['records']) == 2
        assert {'loss', 'grad_norm', 'lr'} <= set(run['records'][0]) and run['verdict']
    # Same seed and schedule: the same learning rates, step by step.
    assert [r['lr'] for r in with_norm['records']] == [r['lr'] for r in without['records']]
    assert with_norm['records'][0]['grad_norm'] > 0
    assert (out / 'post_addition_norm.png').stat().st_size > 0
    with pytest.raises(SystemExit):
        post_addition_norm.parse_args(['--config', 'no/such/config.py'])


# INT8 table ------------------------------------------------------------------


def test_int8_table_quantizes_float_and_qat_runs(tmp_path, digits):
    out = tmp_path / 'out'
    options = TINY_OPTIONS + ['test_dataloader.dataset.indices=8', 'test_dataloader.batch_size=8']
    assert int8_table.main(['--models', 'OREPA-ResNet-18', '--weight-ranges', 'reduced',
                            '--epochs', '1', '--calib-batches', '1', '--rounds', '1',
                            '--repeats', '1', '--data-root', digits, '--out', str(out),
                            *options]) == 0
    report = read_json(out / 'int8_table.json')
    assert list(report['rows']) == ['OREPA-ResNet-18, float, reduced',
                                    'OREPA-ResNet-18, QAT reduced, reduced']
    runs = report['runs']
    assert runs['OREPA-ResNet-18, float, reduced']['weights'] == 'calibrated'
    assert runs['OREPA-ResNet-18, QAT reduced, reduced']['weights'] == 'checkpoint scales'
    for run in runs.values():
        assert run['weight_range'] == 'reduced' and 'accuracy/top1' in run['metrics']['int8']
        # The tiny ResNet-18 deploys 21 convs: 17 OREPA layers and 4 plain 1x1
        # downsample convs (its 24-channel stem needs one in layer1 too).
        assert len(run['layers']) == 21
    assert (out / 'int8_weights.png').stat().st_size > 0


# Seeds -----------------------------------------------------------------------


def test_spread_over_seeds():
    stats = spread([97.0, 98.0, 99.0])
    assert stats == dict(mean=98.0, std=1.0, min=97.0, max=99.0, n=3)
    assert format_spread(stats) == '98.00 ± 1.00 (97.00-99.00)'
    assert format_spread(stats, 1, ranges=False) == '98.0 ± 1.0'
    single = spread([98.05])
    assert single['n'] == 1 and single['std'] != single['std']  # one run: no spread (NaN)
    assert format_spread(single) == '98.05'
    # A difference only beyond the spread; one run never makes one.
    assert not exceeds_spread(stats, spread([98.5, 99.5, 100.5]))
    assert exceeds_spread(stats, spread([101.0, 101.5, 102.0]))
    assert not exceeds_spread(single, spread([50.0]))
    assert seed_list(3) == [0, 1, 2] and seed_work_dir('out/run', 0) == 'out/run'
    assert seed_work_dir('out/run', 2) == 'out/run-seed2'
    with pytest.raises(ValueError):
        spread([])
    with pytest.raises(ValueError):
        seed_list(0)


@pytest.mark.parametrize('tool', [int8_table, post_addition_norm])
def test_seeds_must_be_positive(tool, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(['--seeds', '0'])
    assert '--seeds' in capsys.readouterr().err
    assert tool.parse_args([]).seeds == 1


def test_int8_table_over_seeds_keeps_every_run(tmp_path, digits):
    out = tmp_path / 'out'
    options = TINY_OPTIONS + ['test_dataloader.dataset.indices=8', 'test_dataloader.batch_size=8']
    assert int8_table.main(['--models', 'ResNet-18', '--weight-ranges', 'reduced', '--epochs', '1',
                            '--seeds', '2', '--calib-batches', '1', '--rounds', '1',
                            '--repeats', '1', '--data-root', digits, '--out', str(out),
                            *options]) == 0
    report = read_json(out / 'int8_table.json')
    assert report['settings']['seeds'] == 2
    row = report['rows']['ResNet-18, float, reduced']
    assert row['seeds'] == [0, 1]
    for key in ('fp32', 'int8', 'sqnr', 'train_loss'):
        assert set(row[key]) == {'mean', 'std', 'min', 'max', 'n'} and row[key]['n'] == 2
        assert row[key]['min'] <= row[key]['mean'] <= row[key]['max']
    runs = report['runs']['ResNet-18, float, reduced']
    assert [run['seed'] for run in runs] == [0, 1]
    assert all(len(run['train_losses']) == 1 and 'accuracy/top1' in run['metrics']['int8']
               for run in runs)
    # Another seed: other initial weights and batches.
    assert runs[0]['train_losses'] != runs[1]['train_losses']
    assert (out / 'ResNet-18' / 'float-seed1' / 'epoch_1.pth').exists()


@pytest.mark.slow
def test_post_addition_norm_over_seeds_keeps_every_run(tmp_path, digits):
    out = tmp_path / 'out'
    assert post_addition_norm.main(['--epochs', '1', '--seeds', '2', '--data-root', digits,
                                    '--out', str(out), *TINY_OPTIONS]) == 0
    runs = read_json(out / 'post_addition_norm.json')['runs']
    assert list(runs) == [post_addition_norm.WITH_NORM, post_addition_norm.WITHOUT_NORM]
    for variant in runs.values():
        assert [run['seed'] for run in variant['seeds']] == [0, 1]
        assert all(run['iterations'] == 1 and run['verdict'] for run in variant['seeds'])
        assert variant['val_top1']['n'] == 2 and 0 <= variant['diverged'] <= 2
    first, second = runs[post_addition_norm.WITH_NORM]['seeds']
    assert first['records'][0]['loss'] != second['records'][0]['loss']


@pytest.mark.slow
def test_compare_scalings_over_seeds_keeps_every_run(tmp_path, digits):
    out = tmp_path / 'out'
    assert branch_similarity.main(['--compare-scalings', '--scalings', 'none', '--epochs', '1',
                                   '--seeds', '2', '--data-root', digits, '--out', str(out),
                                   *TINY_OPTIONS]) == 0
    variant = read_json(out / 'scalings.json')['variants']['none']
    assert [run['seed'] for run in variant['seeds']] == [0, 1]
    assert all(len(run['records']) == 2 for run in variant['seeds'])
    for key in ('val_top1', 'mean_off_diagonal_abs', 'moved_mean_off_diagonal_abs'):
        assert variant[key]['n'] == 2 and variant[key]['min'] <= variant[key]['max']
    starts = [run['records'][0]['mean_off_diagonal_abs'] for run in variant['seeds']]
    assert starts[0] != starts[1]  # other initial weights
