"""Shared test settings."""

import torch

# The models in the tests are tiny: one thread runs them as fast as two, and several test
# processes on a small machine do not fight over cores.
torch.set_num_threads(1)
