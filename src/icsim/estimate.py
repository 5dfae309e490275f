"""How long a training run or a reproduction will take on this device, before it starts.

The estimate counts the training FLOPs from the model's shape (`flops_per_token`: forward; ×3 for
forward and backward) and divides by this device's float32 matmul rate, measured in a fraction
of a second, at the efficiency `icsim train` reaches (benchmarks/RESULTS.md: 67% of sgemm peak on
the Garg-size step, 19% on the quick one; we take 50%), plus a per-layer step overhead (the
optimiser's loop and kernel launches). Both fit those two measurements within 2×, and the rate
is measured now, so a loaded machine gives a longer estimate. It is meant to tell minutes from
days, not to the minute.
"""

from __future__ import annotations

import functools
import time

EFFICIENCY = 0.5  # fraction of the measured matmul rate a training step reaches
OVERHEAD_PER_LAYER_S = 0.005  # per step and layer, outside the matmuls (CPU, small models)
HOUR = 3600.0


def step_flops(cfg) -> float:
    """FLOPs of one training step of a TrainConfig at its final prompt length."""
    from icsim.models.transformer import flops_per_token
    from icsim.training.config import model_config

    mc = model_config(cfg)
    tokens = mc.max_positions
    return 3 * flops_per_token(mc, tokens) * tokens * cfg.batch_size


@functools.cache
def device_flops(device: str = "cpu") -> float:
    """This device's float32 matmul rate now (FLOP/s), from ~0.2 s of 512×512 products."""
    import torch

    n, dev = 512, torch.device(device)
    a = torch.randn(n, n, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    a @ a  # noqa: B018 - warm-up
    sync()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.2:
        for _ in range(4):
            a @ a  # noqa: B018
        reps += 4
        sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def train_seconds(cfg, seeds: int = 1, device: str | None = None) -> float:
    """Estimated wall time of a TrainConfig's whole run (`seeds` models) on `device` (default:
    the config's)."""
    per_step = step_flops(cfg) / (EFFICIENCY * device_flops(device or cfg.device))
    per_step += OVERHEAD_PER_LAYER_S * cfg.n_layer
    return seeds * cfg.steps * per_step


def profile_seconds(cfg, device: str = "cpu") -> float | None:
    """Estimated training time of every TrainConfig in an experiment's profile config; None when
    it trains through settings of its own (no TrainConfig to count)."""
    from icsim.experiments.overrides import _walk
    from icsim.training.config import TrainConfig

    runs = [v for _, v in _walk(cfg) if isinstance(v, TrainConfig)]
    return sum(train_seconds(r, device=device) for r in runs) if runs else None


def human(seconds: float) -> str:
    """'40 s', '12 min', '3.5 h', '21 days' ('hours (not estimated)' for inf)."""
    if seconds == float("inf"):
        return "hours (not estimated: it trains through its own settings)"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * HOUR:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / (24 * HOUR):.0f} days"
