import torch

# The unit tests use tiny tensors: one thread avoids OpenMP start-up and oversubscription costs.
torch.set_num_threads(1)
