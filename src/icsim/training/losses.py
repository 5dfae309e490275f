"""Training losses: `loss(forward, batch) -> scalar`, where `forward` calls the model (a plain
module, its DDP or compiled wrapper, or one model of a vectorised stack) and `batch` is what the
trainer's `sample` returned. A new target is a new function here, not a new training loop."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from icsim.training.batches import Padded


class Targeted(NamedTuple):
    """Prompts with a target computed outside the model (e.g. an algorithm's output)."""

    prompts: object  # a TaskBatch
    target: torch.Tensor


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error, computed in float32 (or wider) whatever the autocast dtype."""
    return (pred.float() - target.float()).square().mean()


def mse_every_prefix(fmt):
    """MSE of the prediction at every prefix against the format's labels (Garg et al. 2022);
    over the real points only for a `Padded` batch (the same value as unpadded)."""

    def loss(forward, batch):
        if isinstance(batch, Padded):
            pred, target = fmt.run(forward, batch.prompts), fmt.targets(batch.prompts)
            w = batch.weight.reshape(*batch.weight.shape, *[1] * (pred.dim() - 2))
            sq = (pred.float() - target.float()).square() * w
            return sq.sum() / (batch.weight.sum() * pred[0, 0].numel())
        return mse(fmt.run(forward, batch), fmt.targets(batch))

    return loss


def cross_entropy_every_prefix(fmt, labels=None):
    """Cross-entropy of the logits read out at every prefix [B, m, A] against integer labels
    [B, m] (e.g. the actions of a bandit history); `labels(batch)` defaults to the format's."""

    def loss(forward, batch):
        logits = fmt.run(forward, batch).float()
        target = fmt.targets(batch) if labels is None else labels(batch)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1).long())

    return loss


def mse_to_target(fmt):
    """MSE between the read-out at the queries and `batch.target` of a `Targeted` batch:
    regression to an algorithm's output (Giannou et al. 2025 train on damped Newton's w_N)."""

    def loss(forward, batch: Targeted):
        pred = fmt.run(forward, batch.prompts)
        return mse(pred.reshape(batch.target.shape), batch.target)

    return loss


__all__ = ["Targeted", "mse", "mse_every_prefix", "cross_entropy_every_prefix", "mse_to_target"]
