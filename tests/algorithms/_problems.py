"""Random float64 least-squares problems for the algorithm tests (incl. ill-conditioned κ = 100)."""

import numpy as np
import torch

import icsim.tasks


def problems(batch=12, n=30, d=8, kappa=1.0, noise=0.0, m=4, seed=0):
    """A Problem with `n` context and `m` query points per prompt, float64 on the CPU."""
    task = icsim.tasks.get("linear_regression", dim=d, condition_number=kappa, noise_std=noise)
    g = torch.Generator().manual_seed(seed)
    return task.sample(batch, n + m, generator=g, dtype=torch.float64).split(n)


def as_np(t):
    return t.detach().cpu().numpy()


def rel_err(a, b):
    """‖a − b‖ / max(‖b‖, tiny), per leading index when a is 2-D."""
    a, b = np.asarray(a), np.asarray(b)
    num = np.linalg.norm((a - b).reshape(len(a), -1), axis=1)
    den = np.linalg.norm(b.reshape(len(b), -1), axis=1)
    return num / np.maximum(den, 1e-300)
