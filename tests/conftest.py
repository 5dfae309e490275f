import os

import torch
from hypothesis import settings

# The unit tests use tiny tensors: one thread avoids OpenMP start-up and oversubscription costs.
torch.set_num_threads(1)

# The property tests draw the same examples on every run, so a CI result is reproducible;
# `pytest --hypothesis-profile explore` draws fresh ones to hunt for new failures.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
