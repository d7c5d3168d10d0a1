"""The benchmark's numbers: ratios with their spread, tables, a plot, JSON."""
import json
import statistics
from typing import Dict, List

from prettytable import PrettyTable

from . import models


def ratio_stats(values: List[float], references: List[float]) -> Dict[str, float]:
    """min / median / max over the rounds of ``values[i] / references[i]``."""
    ratios = [value / reference for value, reference in zip(values, references)]
    return dict(min=min(ratios), median=statistics.median(ratios), max=max(ratios))


def summarize(results: Dict[str, dict]) -> Dict[str, dict]:
    """Per arch and variant: step time and peak memory, their ratios to the first
    variant (per round), parameters and the kernel-generation shares."""
    summary = {}
    for arch, entry in results.items():
        timings = entry['time']['variants']
        variants = list(timings)
        reference = variants[0]
        ref_times = timings[reference]['times_s']
        ref_memory = [run['peak_memory_mb'] for run in entry['memory'][reference]]
        rows = {}
        for variant in variants:
            timing = timings[variant]
            memory = [run['peak_memory_mb'] for run in entry['memory'][variant]]
            row = dict(step_s=statistics.median(timing['times_s']),
                       time_ratio=ratio_stats(timing['times_s'], ref_times),
                       peak_memory_mb=statistics.median(memory),
                       memory_ratio=ratio_stats(memory, ref_memory),
                       params_train=timing['params_train'],
                       params_deploy=timing['params_deploy'],
                       rounds=len(timing['times_s']))
            if timing.get('placement', {}).get('branches'):
                row['placement'] = timing['placement']
            for key in ('kernels', 'products'):
                if key in timing:
                    row[f'{key}_s'] = timing[key]
                    row[f'{key}_share'] = timing[key] / statistics.median(ref_times)
            rows[variant] = row
        summary[arch] = dict(train=rows)
        if 'infer' in entry:
            infer = entry['infer']
            stock = infer['stock']['times_s']
            squeezed = next(name for name in infer if name not in ('stock', models.CACHED))
            summary[arch]['infer'] = dict(
                variant=squeezed, params=infer[squeezed]['params'],
                stock_params=infer['stock']['params'],
                stock_s=statistics.median(stock),
                throughput_ratio=ratio_stats(stock, infer[squeezed]['times_s']),
                cached_throughput_ratio=ratio_stats(stock, infer[models.CACHED]['times_s']))
    return summary


def _spread(stats: Dict[str, float]) -> str:
    return f"{stats['median']:.2f}x ({stats['min']:.2f}-{stats['max']:.2f})"


def format_tables(summary: Dict[str, dict], settings: dict) -> str:
    """Training, kernel-generation and inference tables as text."""
    # The detector trains on a fixed batch whatever --batch and --size say.
    shapes = {arch: models.input_shape(arch, settings['batch'], settings['size'])
              for arch in summary}
    inputs = ', '.join(f"{arch} {'x'.join(map(str, shape))}" for arch, shape in shapes.items())
    head = (f"Training step: input {inputs}, {settings['device']}, {settings['threads']} thread(s)"
            f"{', bfloat16/float16 autocast' if settings['amp'] else ', float32'}; "
            f"time: steps alternating in one process, {settings['rounds']} rounds after "
            f"{settings['warmup']} warm-up; memory: each variant in a fresh process, "
            f"{settings['memory_rounds']} rounds; ratios: median (min-max over rounds)")
    train = PrettyTable(['arch', 'variant', 'params train', 'params deploy', 'step',
                         'time ratio', 'peak memory', 'memory ratio'])
    kernels = PrettyTable(['arch', 'variant', 'all kernels (fwd+bwd)', 'share of plain step',
                           'of which matrix products', 'share'])
    placement = PrettyTable(['arch', 'variant', 'branches on the feature map (of layers '
                             'with the branch), forward multiply-adds',
                             'branches / convs, multiply-adds'])
    infer = PrettyTable(['arch', 'squeezed', 'params', 'stock params', 'stock batch time',
                         'throughput vs stock', 'train form, cached kernels, vs stock'])
    for arch, entry in summary.items():
        for variant, row in entry['train'].items():
            train.add_row([arch, variant, f"{row['params_train'] / 1e6:.2f} M",
                           f"{row['params_deploy'] / 1e6:.2f} M", f"{row['step_s']:.3f} s",
                           _spread(row['time_ratio']), f"{row['peak_memory_mb']:.0f} MB",
                           _spread(row['memory_ratio'])])
            if 'placement' in row:
                branches, conv_macs = row['placement']['branches'], row['placement']['conv_macs']
                placement.add_row([arch, variant, ', '.join(
                    f'{branch} {feature}/{total} {macs / 1e9:.2f} G'
                    for branch, (feature, total, macs) in branches.items()),
                    f"{sum(macs for *_, macs in branches.values()) / conv_macs:.2f}"])
            if 'kernels_s' in row:
                kernels.add_row([arch, variant, f"{row['kernels_s']:.3f} s",
                                 f"{row['kernels_share']:.2f}", f"{row['products_s']:.3f} s",
                                 f"{row['products_share']:.2f}"])
        if 'infer' in entry:
            row = entry['infer']
            infer.add_row([arch, row['variant'], f"{row['params'] / 1e6:.2f} M",
                           f"{row['stock_params'] / 1e6:.2f} M", f"{row['stock_s']:.3f} s",
                           _spread(row['throughput_ratio']),
                           _spread(row['cached_throughput_ratio'])])
    parts = [head, train.get_string()]
    if placement.rows:
        placement.align['branches on the feature map (of layers with the branch), forward '
                        'multiply-adds'] = 'l'
        parts += ['Branch placement in a training step (docs/benchmarks.md, "Branch '
                  'placement")', placement.get_string()]
    if kernels.rows:
        parts += ['Where OREPA\'s extra time goes: generating every kernel, forward and '
                  'backward, no feature maps', kernels.get_string()]
    if infer.rows:
        parts += ['Inference (eval, no_grad, batch by batch alternating): the squeezed '
                  'model and the train-form model (kernels cached) vs the stock network',
                  infer.get_string()]
    return '\n'.join(parts)


def plot(summary: Dict[str, dict], path: str) -> None:
    """Time and memory ratio per variant with the min-max spread, one row per arch
    (for the component rows: the paper's Figure 8)."""
    import matplotlib
    matplotlib.use('Agg')  # files only; no display on benchmark machines
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(len(summary), 2, figsize=(11, 3.2 * len(summary)),
                                squeeze=False)
    for row_axes, (arch, entry) in zip(axes, summary.items()):
        names = list(entry['train'])
        for axis, key, title in ((row_axes[0], 'time_ratio', 'training step time'),
                                 (row_axes[1], 'memory_ratio', 'peak memory')):
            stats = [entry['train'][name][key] for name in names]
            medians = [s['median'] for s in stats]
            errors = [[m - s['min'] for m, s in zip(medians, stats)],
                      [s['max'] - m for m, s in zip(medians, stats)]]
            bars = axis.bar(range(len(names)), medians, yerr=errors, capsize=3,
                            color=['#9e9e9e'] + ['#4c72b0' if models.is_offline(name)
                                                 else '#dd8452' for name in names[1:]])
            for bar, value, spread in zip(bars, medians, stats):
                axis.annotate(f'{value:.2f}x', (bar.get_x() + bar.get_width() / 2,
                                                spread['max']), xytext=(0, 3),
                              textcoords='offset points', ha='center', va='bottom',
                              fontsize=8)
            axis.set_xticks(range(len(names)), names, fontsize=8, rotation=20)
            axis.margins(y=0.12)
            axis.set_title(f'{arch}: {title} (x {names[0]})', fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def plot_sizes(summaries: Dict[int, Dict[str, dict]], path: str) -> None:
    """Time and memory ratio of every variant over input sizes (median, min-max
    band), one row per arch: where branch placement changes the cost."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sizes = sorted(summaries)
    archs = list(summaries[sizes[0]])
    figure, axes = plt.subplots(len(archs), 2, figsize=(11, 3.4 * len(archs)), squeeze=False)
    for row_axes, arch in zip(axes, archs):
        variants = list(summaries[sizes[0]][arch]['train'])
        for axis, key, title in ((row_axes[0], 'time_ratio', 'training step time'),
                                 (row_axes[1], 'memory_ratio', 'peak memory')):
            for variant in variants[1:]:
                stats = [summaries[size][arch]['train'][variant][key] for size in sizes]
                line, = axis.plot(sizes, [s['median'] for s in stats], marker='o',
                                  label=variant)
                axis.fill_between(sizes, [s['min'] for s in stats], [s['max'] for s in stats],
                                  color=line.get_color(), alpha=0.2)
            axis.axhline(1.0, color='#9e9e9e', linewidth=0.8)
            axis.set_xscale('log', base=2)
            axis.set_xticks(sizes, [str(size) for size in sizes])
            axis.set_xlabel('input side (pixels)')
            axis.set_title(f'{arch}: {title} (x {variants[0]})', fontsize=10)
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def write_json(path: str, settings: dict, summary: dict, results: dict) -> None:
    with open(path, 'w') as file:
        json.dump(dict(settings=settings, summary=summary, runs=results), file, indent=2)
