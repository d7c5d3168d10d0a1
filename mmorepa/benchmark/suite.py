"""The benchmark's plan: which jobs run, each in a fresh process, and their results."""
import json
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List

from . import models


def worker_command(job: dict) -> List[str]:
    """The command line of a fresh worker process for ``job``."""
    return [sys.executable, '-m', 'mmorepa.benchmark.worker', json.dumps(job)]


def spawn(job: dict, progress: Callable[[str], None]) -> dict:
    """Run one job in a fresh process, its progress lines passed on."""
    # stdout goes to a file, not a pipe: libraries the worker builds (mmdet's
    # detector) log there, and a pipe nobody reads while stderr is followed
    # fills up and stalls the worker.
    with tempfile.TemporaryFile(mode='w+') as stdout:
        process = subprocess.Popen(worker_command(job), stdout=stdout,
                                   stderr=subprocess.PIPE, text=True)
        errors = []
        for line in process.stderr:
            line = line.rstrip()
            errors.append(line)
            if line.startswith('round '):
                progress(f"  {job['arch']} {job['kind']}: {line}")
        returncode = process.wait()
        stdout.seek(0)
        output = stdout.read().strip().splitlines()
    if returncode != 0 or not output:
        raise RuntimeError(f'benchmark worker for {job} failed (exit {returncode}):\n'
                           + '\n'.join(errors[-30:]))
    return json.loads(output[-1])['result']


def run_suite(settings: dict, progress: Callable[[str], None] = print) -> Dict[str, dict]:
    """Every measurement of ``settings`` (arch list, batch, size, rounds, ...).

    Per arch: one time job (all variants alternating over the rounds), one
    memory job per variant and memory round, and, for classification archs, one
    inference job (squeezed against stock).

    Returns:
        dict: ``{arch: {'time': ..., 'memory': {variant: [runs]}, 'infer': ...}}``.
    """
    common = {key: settings[key] for key in ('batch', 'size', 'warmup', 'threads', 'device',
                                             'amp', 'channels_last')}
    results = {}
    for arch in settings['archs']:
        variants = [v for v in models.variants(arch)
                    if v in settings['variants'] or v == models.variants(arch)[0]] \
            if settings.get('variants') else list(models.variants(arch))
        progress(f'{arch}: timing {", ".join(variants)}, steps alternating in one process')
        entry = dict(time=spawn(dict(common, kind='time', arch=arch, variants=variants,
                                     rounds=settings['rounds']), progress),
                     memory={variant: [] for variant in variants})
        for index in range(settings['memory_rounds']):
            for variant in variants:
                run = spawn(dict(common, kind='memory', arch=arch, variant=variant,
                                 steps=settings['memory_steps']), progress)
                entry['memory'][variant].append(run)
                progress(f'  {arch} memory round {index + 1}/{settings["memory_rounds"]}: '
                         f'{variant} {run["peak_memory_mb"]:.0f} MB')
        if arch in models.DEPLOYED:
            entry['infer'] = spawn(dict(common, kind='infer', arch=arch, amp=False,
                                        variant=models.DEPLOYED[arch],
                                        rounds=settings['rounds']), progress)
        results[arch] = entry
    return results
