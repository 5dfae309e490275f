"""Metrics of record, each defined once."""

from __future__ import annotations

import torch


def squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).square()


def normalised_squared_error(pred: torch.Tensor, target: torch.Tensor, dim: int) -> torch.Tensor:
    """Squared error divided by the dimension d (Garg et al. 2022, Fig. 2): the zero predictor
    scores 1 on isotropic N(0, I_d) data with w* ~ N(0, I_d)."""
    return squared_error(pred, target) / dim


def cosine_similarity(a: torch.Tensor, b: torch.Tensor, dim: int = -1, eps: float = 1e-12):
    """cos(a, b) along `dim`; 0 where either vector is zero."""
    num = (a * b).sum(dim)
    den = a.norm(dim=dim) * b.norm(dim=dim)
    return torch.where(den > eps, num / den.clamp(min=eps), torch.zeros_like(num))


def mean_and_interval(
    values: torch.Tensor,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    generator: torch.Generator | None = None,
):
    """Mean over the first dimension (prompts) and a bootstrap `level` interval (Garg et al.
    2022 report bootstrap intervals). values [P, ...] -> (mean, low, high), each [...]."""
    values = values.double()
    P = values.shape[0]
    idx = torch.randint(P, (n_boot, P), generator=generator, device=values.device)
    boots = values[idx].mean(1)
    alpha = (1 - level) / 2
    q = torch.tensor([alpha, 1 - alpha], dtype=values.dtype, device=values.device)
    low, high = torch.quantile(boots, q, dim=0)
    return values.mean(0), low, high


def r2_score(pred: torch.Tensor, target: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Coefficient of determination 1 − SS_res/SS_tot along `dim`."""
    ss_res = (target - pred).square().sum(dim)
    ss_tot = (target - target.mean(dim, keepdim=True)).square().sum(dim)
    return 1 - ss_res / ss_tot.clamp(min=1e-12)


# --- reproductions of Garg / von Oswald / Fu (helper expA) ---------------------------------


def half_mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """von Oswald et al. 2023's loss: ½ (ŷ − y)², averaged over tasks."""
    return 0.5 * (pred - target).square().mean().item()


def sensitivity_agreement(pred_a, grad_a, pred_b, grad_b) -> dict:
    """von Oswald et al. 2023's three measures between two predictors, mean over tasks: the
    cosine and the distance of their sensitivities ∂ŷ/∂x_query, and |ŷ_a − ŷ_b|."""
    return {
        "model_cos": cosine_similarity(grad_a, grad_b).mean().item(),
        "model_diff": (grad_a - grad_b).norm(dim=-1).mean().item(),
        "preds_diff": (pred_a - pred_b).abs().mean().item(),
    }


def paired_difference(a: torch.Tensor, b: torch.Tensor, generator=None) -> dict:
    """a − b prompt by prompt ([P] each): mean, bootstrap 95% interval and the spread (std)."""
    diff = (a - b).double()
    mean, low, high = mean_and_interval(diff[:, None], generator=generator)
    return {
        "": mean.item(),
        "_low": low.item(),
        "_high": high.item(),
        "_prompt_std": diff.std().item(),
    }
