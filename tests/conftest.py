import os

import torch
from hypothesis import HealthCheck, settings

# Property tests: a fixed profile so CI runs the same number of cases every time.
settings.register_profile('default', max_examples=int(os.environ.get('MMOREPA_EXAMPLES', 40)),
                          deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile('default')
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
