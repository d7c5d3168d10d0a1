import os
import shutil

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property tests: a fixed profile so CI runs the same number of cases every time.
settings.register_profile('default', max_examples=int(os.environ.get('MMOREPA_EXAMPLES', 40)),
                          deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile('default')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tmp_path(tmp_path):
    """pytest's ``tmp_path``, removed when the test ends.

    The recipe tests write real checkpoints (up to 1 GB each for an mmseg
    ResNet-50 with its optimizer state); pytest keeps every test's folder until
    the session ends, which is about 15 GB per run. Removing each as its test
    ends keeps the suite's disk use to what the running tests hold.
    """
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
