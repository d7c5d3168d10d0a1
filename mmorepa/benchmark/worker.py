"""One measurement in a process of its own: ``python -m mmorepa.benchmark.worker JOB``.

JOB is a JSON object (see :func:`run`); progress goes to stderr line by line,
the result is the last stdout line, as JSON.
"""
import json
import os
import sys

import torch

from . import models
from .measure import (alternate, branch_placement, kernel_generation, peak_memory_mb,
                      peak_rss_mb, reset_peak_memory)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _step(job: dict, model: torch.nn.Module, device: torch.device):
    return models.training_step(model, job['batch'], job['size'], device, job['amp'],
                                job['channels_last'])


def time_job(job: dict, device: torch.device) -> dict:
    """Every variant of the arch in this process, their steps alternating."""
    built = {variant: models.build(job['arch'], variant) for variant in job['variants']}
    steps = {variant: _step(job, model, device) for variant, model in built.items()}
    times = alternate(steps, job['rounds'], job['warmup'], device, _progress)
    result = {}
    for variant, model in built.items():
        entry = dict(times_s=times[variant], params_train=models.count_params(model))
        if variant in models.KERNEL_TIMED:
            entry.update(kernel_generation(model, job['rounds'], device,
                                           models.autocast_dtype(device) if job['amp'] else None))
        if not models.is_offline(variant):
            entry['placement'] = branch_placement(model, steps[variant])
        entry['params_deploy'] = models.deployed_params(model)
        result[variant] = entry
    return dict(variants=result, pid=os.getpid())


def memory_job(job: dict, device: torch.device) -> dict:
    """One variant alone: its peak memory over a few steps."""
    before = peak_rss_mb()
    model = models.build(job['arch'], job['variant'])
    step = _step(job, model, device)
    for _ in range(job['warmup']):
        step()
    reset_peak_memory(device)
    for _ in range(job['steps']):
        step()
    return dict(peak_memory_mb=peak_memory_mb(device), rss_before_model_mb=before,
                pid=os.getpid())


def inference_job(job: dict, device: torch.device) -> dict:
    """The stock network, the squeezed model and the train-form model in eval
    mode (its kernels cached) alternating, batch by batch (eval, no_grad): the
    first two are the same network, so any difference between them is the
    measurement's; the third adds the cost of checking its kernel caches."""
    networks = {
        'stock': models.build(job['arch'], 'stock').eval().to(device),
        job['variant']: models.reparameterize(models.build(job['arch'], job['variant']).eval(),
                                              inplace=True).to(device),
        models.CACHED: models.build(job['arch'], job['variant']).eval().to(device),
    }
    inputs = torch.randn(job['batch'], models.IN_CHANNELS, job['size'], job['size'],
                         device=device)

    def forward(network):
        def run():
            with torch.no_grad():
                network(inputs)
        return run

    steps = {name: forward(network) for name, network in networks.items()}
    times = alternate(steps, job['rounds'], job['warmup'], device, lambda line: None)
    return {name: dict(times_s=times[name], params=models.count_params(network))
            for name, network in networks.items()}


JOBS = dict(time=time_job, memory=memory_job, infer=inference_job)


def run(job: dict) -> dict:
    """Run ``job``: ``kind`` (time, memory, infer), ``arch``, ``variants`` or
    ``variant``, ``batch``, ``size``, ``rounds``/``steps``, ``warmup``,
    ``threads``, ``device``, ``amp``, ``channels_last``."""
    torch.set_num_threads(job['threads'])
    torch.manual_seed(0)
    device = torch.device(job['device'])
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as in training; the warm-up tunes it
    return JOBS[job['kind']](job, device)


def main() -> int:
    job = json.loads(sys.argv[1])
    result = run(job)
    print(json.dumps(dict(result=result, pid=os.getpid())), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
