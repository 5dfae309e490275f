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


def cross_entropy_matched(fmt, match):
    """Cross-entropy of the logits read out at every point [B, n, K] against targets chosen
    from the output itself, `match(log_probs.detach(), batch) -> [B, n]` (−1 = ignored): labels
    defined only up to a permutation, e.g. clusters (He et al. 2025) renamed to fit best."""

    def loss(forward, batch):
        logp = fmt.run(forward, batch).float().log_softmax(-1)
        target = match(logp.detach(), batch).reshape(-1).long()
        return F.nll_loss(logp.reshape(-1, logp.shape[-1]), target, ignore_index=-1)

    return loss


def mse_to_target(fmt):
    """MSE between the read-out at the queries and `batch.target` of a `Targeted` batch:
    regression to an algorithm's output (Giannou et al. 2025 train on damped Newton's w_N)."""

    def loss(forward, batch: Targeted):
        pred = fmt.run(forward, batch.prompts)
        return mse(pred.reshape(batch.target.shape), batch.target)

    return loss


def sign_free_eigenpairs(fmt, value_weight: float = 1.0):
    """Eigenpair read-outs [B, k, d + 1] = [v̂_j; λ̂_j] against the format's targets (He et al.
    2025): 1 − cos²(v̂_j, v_j), sign-free since v and −v are the same eigenvector, plus
    `value_weight` × the squared relative error of λ̂_j."""

    def loss(forward, batch):
        pred, target = fmt.run(forward, batch).float(), fmt.targets(batch).float()
        cos = F.cosine_similarity(pred[..., :-1], target[..., :-1], dim=-1, eps=1e-8)
        rel = (pred[..., -1] - target[..., -1]) / target[..., -1]
        return (1 - cos.square()).mean() + value_weight * rel.square().mean()

    return loss


__all__ = ["Targeted", "mse", "mse_every_prefix", "cross_entropy_every_prefix", "mse_to_target"]
__all__ += ["cross_entropy_matched", "sign_free_eigenpairs"]
