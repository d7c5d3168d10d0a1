"""Training with and without OREPA's post-addition norm (the paper's Table 3,
last row): the norm after every OREPA conv replaced by ``nn.Identity``, and
whether the run diverges.

"Without" removes the BatchNorm right after every ``ReparamConv2d`` (the stem
and both convs of each ResNet block). Norms after plain convs (the 1x1 conv-BN
shortcuts of basic blocks) stay: they are not post-addition norms. The convs
keep no bias, as in the paper's ablation, which removes the norm only.
"""
import math
from typing import Callable, List, Optional, Tuple

from torch import nn

from ..layers import ReparamConv2d, conv_norm_pairs, set_submodule
from .demo_training import demo_training_config, train_on_demo
from .seeds import spread
from .training_records import ValMetricsRecorder, record_updates

TOP1 = 'accuracy/top1'


def _print(line: str) -> None:
    print(line, flush=True)


def remove_post_addition_norms(model: nn.Module) -> List[str]:
    """Replace the norm right after every OREPA conv by ``nn.Identity``, in place.

    Args:
        model (nn.Module): A model with re-param convs.

    Returns:
        list[str]: The names of the replaced norms.

    Raises:
        ValueError: The model has no norm after a re-param conv.
    """
    replaced = [norm_name for (_, conv), (norm_name, norm) in list(conv_norm_pairs(model))
                if isinstance(conv, ReparamConv2d)
                and isinstance(norm, nn.modules.batchnorm._BatchNorm)]
    if not replaced:
        raise ValueError(f'{type(model).__name__} has no BatchNorm right after a re-param '
                         'conv: no post-addition norm to remove')
    for name in replaced:
        set_submodule(model, name, nn.Identity())
    return replaced


def first_non_finite(records: List[dict]) -> Optional[int]:
    """The first iteration (from 1) whose loss or gradient norm is not finite.

    Args:
        records (list[dict]): Per-update records with ``loss`` and
            ``grad_norm`` (:class:`.training_records.RecordingOptimWrapper`).

    Returns:
        int | None: The iteration, or ``None`` when every value is finite.
    """
    for iteration, record in enumerate(records, 1):
        if not (math.isfinite(record['loss']) and math.isfinite(record['grad_norm'])):
            return iteration
    return None


def train_norm_variant(config: str, data_root: str, work_dir: str, epochs: int,
                       without_norm: bool, lr: Optional[float] = None,
                       cfg_options: Optional[dict] = None, seed: int = 0,
                       log: Optional[Callable[[str], None]] = None) -> dict:
    """Train ``config``'s model on the demo data, with or without its
    post-addition norms, recording every update.

    Args:
        config (str): Classification config of an OREPA model.
        data_root (str): Folder of the demo digits.
        work_dir (str): The run's work dir.
        epochs (int): Training epochs.
        without_norm (bool): Remove the post-addition norms before the first step.
        lr (float, optional): SGD learning rate. Defaults to the demo's.
        cfg_options (dict, optional): Overrides merged last.
        seed (int): The Runner's seed. Defaults to 0.
        log (Callable[[str], None], optional): Progress lines. Defaults to
            printing them.

    Returns:
        dict: ``records`` (loss, gradient norm and lr per update),
        ``removed_norms``, ``first_non_finite_iteration``, ``iterations``,
        ``lr``, ``final_loss``, ``max_grad_norm`` (over finite updates) and
        ``val_metrics`` (the last validation).
    """
    log = log or _print
    cfg = demo_training_config(config, data_root, work_dir, epochs, cfg_options, seed)
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    record_updates(cfg)
    removed = []

    def prepare(runner) -> None:
        if without_norm:
            model = getattr(runner.model, 'module', runner.model)
            removed.extend(remove_post_addition_norms(model))
            log(f'    replaced {len(removed)} post-addition norms by nn.Identity '
                f'({removed[0]}, ..., {removed[-1]})')

    validation = ValMetricsRecorder()
    runner = train_on_demo(cfg, hooks=[validation], prepare=prepare)
    records = runner.optim_wrapper.records
    broken = first_non_finite(records)
    finite = [r for r in records if math.isfinite(r['loss']) and math.isfinite(r['grad_norm'])]
    return dict(records=records, removed_norms=removed, first_non_finite_iteration=broken,
                iterations=len(records), lr=cfg.optim_wrapper.optimizer.lr,
                final_loss=records[-1]['loss'] if records else float('nan'),
                max_grad_norm=max((r['grad_norm'] for r in finite), default=float('nan')),
                val_metrics=validation.metrics[-1] if validation.metrics else {})


def verdict(run: dict) -> str:
    """Whether and when a run of :func:`train_norm_variant` diverged, in words.

    Args:
        run (dict): What :func:`train_norm_variant` returns.

    Returns:
        str: One sentence.
    """
    broken = run['first_non_finite_iteration']
    if broken is not None:
        return f'diverged: non-finite loss or gradient from iteration {broken}'
    return (f'did not diverge in {run["iterations"]} iterations (final loss '
            f'{run["final_loss"]:.4g}, largest gradient norm {run["max_grad_norm"]:.4g})')


def seed_summary(runs: List[Tuple[int, dict]]) -> dict:
    """One variant over seeds: every run, and the spread of its numbers.

    Args:
        runs (list[tuple[int, dict]]): ``(seed, run)`` pairs, each run from
            :func:`train_norm_variant`.

    Returns:
        dict: ``seeds`` (every run with its ``seed`` and :func:`verdict`),
        ``val_top1`` and ``final_loss`` (:func:`.seeds.spread`; NaN values
        count as NaN) and ``diverged`` (how many runs did).
    """
    return dict(seeds=[dict(run, seed=seed, verdict=verdict(run)) for seed, run in runs],
                val_top1=spread(run['val_metrics'].get(TOP1, math.nan) for _, run in runs),
                final_loss=spread(run['final_loss'] for _, run in runs),
                diverged=sum(run['first_non_finite_iteration'] is not None for _, run in runs))
