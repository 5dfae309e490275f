"""Data-parallel training of one run through `torchrun` (DistributedDataParallel).

Every rank draws the same global batch from the same generator and trains on its own slice of
rows, so a run on W processes follows the single-process run at the same global batch: DDP
averages the slices' gradients, which is the gradient of the global batch's mean loss. Drawing
the whole batch on every rank costs little next to the model and keeps the RNG streams (and
resuming) identical to a single-process run. Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from icsim.errors import InputError
from icsim.training import batches


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def setup(device: torch.device, batch_size: int | None = None) -> tuple[int, int]:
    """Join the process group when launched by torchrun (gloo on a CPU, NCCL on GPUs)."""
    rank, size = world()
    if size == 1:
        return rank, size
    if batch_size is not None:
        check_divisible(batch_size, size)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, size


def check_divisible(batch_size: int, size: int) -> None:
    if batch_size % size:
        raise InputError(
            f"batch_size={batch_size} must be divisible by the number of processes ({size}); "
            f"use a multiple of {size}."
        )


def shard(batch, rank: int, size: int):
    """This rank's contiguous slice of the rows of a global batch (every tensor in it)."""
    if size == 1:
        return batch
    total = batches.n_rows(batch)
    check_divisible(total, size)
    per = total // size
    return batches.rows(batch, rank * per, (rank + 1) * per)


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over all ranks (one collective: called at log time only)."""
    if not dist.is_initialized():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()
