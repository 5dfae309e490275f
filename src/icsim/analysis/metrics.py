"""Metrics of record, each defined once."""

from __future__ import annotations

import math

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
    2022 report bootstrap intervals). values [P, ...] -> (mean, low, high), each [...].
    generator None: one seeded 0 on values' device, so that a band is the same run to run."""
    values = values.double()
    P = values.shape[0]
    if generator is None:
        generator = torch.Generator(device=values.device).manual_seed(0)
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


# --- metrics of the giannou2025, liu2025 and wu2025 reproductions ----------------------------


def w_error(w: torch.Tensor, w_ref: torch.Tensor) -> torch.Tensor:
    """‖w − w_ref‖²/d per problem, in float64 (Giannou et al. 2025's code: training loss and
    "distance to w_Newton"). w [..., d], w_ref [..., d] -> [...]."""
    return (w.double() - w_ref).square().mean(-1)


def nmse_db(err: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """10 log10(Σ err / Σ power) over the last dimension (prompts): normalised MSE in dB
    (Liu et al. 2025's recovery error). err [..., B], power [B] -> [...]."""
    return 10 * torch.log10(err.sum(-1) / power.sum(-1))


def nmse_db_interval(
    err: torch.Tensor, power: torch.Tensor, *, n_boot: int = 500, generator=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`nmse_db` of every row of err [S, B] and a bootstrap 95% interval over prompts (the same
    resampled prompts for every row): (value [S], low [S], high [S])."""
    B = err.shape[-1]
    idx = torch.randint(B, (n_boot, B), generator=generator, device=err.device)
    boots = nmse_db(err[:, idx], power[idx])  # [S, n_boot]
    q = torch.tensor([0.025, 0.975], dtype=boots.dtype, device=boots.device)
    low, high = torch.quantile(boots, q, dim=1)
    return nmse_db(err, power), low, high


def pooled_r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    """R² pooled over prompts (one query each): 1 − Σ(y − ŷ)² / Σ(y − ȳ)², in float64."""
    return r2_score(pred.double(), y.double(), dim=0).item()


def mean_and_interval_by_column(values: torch.Tensor, *, generator=None):
    """`mean_and_interval` of each column of values [P, S] with its own bootstrap draw (one
    [1000, P] resample per column, in order): (mean [S], low [S], high [S])."""
    if generator is None:
        generator = torch.Generator(device=values.device).manual_seed(0)
    cols = [mean_and_interval(values[:, j], generator=generator) for j in range(values.shape[1])]
    return tuple(torch.stack(v) for v in zip(*cols, strict=True))


def matched_steps(errors, value: float) -> float | None:
    """Steps t (fractional) at which a decreasing error curve errors[0..S] reaches `value`:
    log-linear interpolation between the last step above `value` and the first at or below it;
    0 if errors[0] <= value; None if the curve never gets that low within S steps."""
    e = [max(float(x), 1e-300) for x in errors]
    if e[0] <= value:
        return 0.0
    for t in range(1, len(e)):
        if e[t] <= value:
            lo, hi = math.log(e[t - 1]), math.log(e[t])
            return t - 1 + (lo - math.log(value)) / (lo - hi) if lo > hi else float(t)
    return None


def first_step_at_or_below(curve, level: float) -> int:
    """First step whose value is at or below `level`; len(curve) when none is ("more than")."""
    return next((k for k, v in enumerate(curve) if v <= level), len(curve))
