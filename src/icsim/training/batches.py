"""A training batch as a tree of tensors (a TaskBatch, tuples, NamedTuples, lists, dicts), so
the trainer can stack one batch per seed for a vectorised step and slice rows for DDP without
knowing what the batch holds."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F

from icsim.tasks.base import TaskBatch


def map_tensors(fn, batch):
    """`batch` with every tensor t replaced by fn(t), visited in a fixed order."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, TaskBatch):
        xs, ys = fn(batch.xs), fn(batch.ys)
        return replace(batch, xs=xs, ys=ys, truth={k: fn(v) for k, v in batch.truth.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # NamedTuple
        return type(batch)(*(map_tensors(fn, b) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(map_tensors(fn, b) for b in batch)
    if isinstance(batch, dict):
        return {k: map_tensors(fn, v) for k, v in batch.items()}
    return batch  # ints, strings: carried as they are


def flatten(batch) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    map_tensors(lambda t: out.append(t) or t, batch)
    return out


def unflatten(like, tensors) -> object:
    """`like` with its tensors replaced, in `flatten` order, by `tensors`."""
    it = iter(tensors)
    return map_tensors(lambda _: next(it), like)


def stack(batches: list) -> object:
    """One batch whose every tensor is the stack [K, ...] of the K batches' tensors."""
    columns = zip(*(flatten(b) for b in batches), strict=True)
    return unflatten(batches[0], [torch.stack(c) for c in columns])


def rows(batch, start: int, stop: int) -> object:
    """Rows start:stop (the first dimension) of every tensor of the batch."""
    return map_tensors(lambda t: t[start:stop], batch)


def n_rows(batch) -> int:
    return flatten(batch)[0].shape[0]


class Padded(NamedTuple):
    """Prompts padded with zero points to a fixed length, so every step has one shape and
    torch.compile traces once across a curriculum; `weight` [B, n_max] is 1 for a real point, 0
    for padding (per row, so DDP's row slices and multi-seed stacks cut it as the prompts).
    Exact for a causal model: real tokens never attend to the padding after them."""

    prompts: TaskBatch
    weight: torch.Tensor


def pad_points(batch: TaskBatch, n_max: int) -> Padded:
    """`batch` with its points padded by zeros to `n_max` (per-prompt truth is kept as it is)."""
    n = batch.n_points
    pad_y = (0, 0) * (batch.ys.dim() - 2) + (0, n_max - n)
    xs = F.pad(batch.xs, (0, 0, 0, n_max - n))
    weight = (torch.arange(n_max, device=xs.device) < n).to(xs.dtype).expand(xs.shape[0], -1)
    return Padded(replace(batch, xs=xs, ys=F.pad(batch.ys, pad_y)), weight)
