"""The batched kernels of `clustering` (Lloyd, soft EM, k-means++): every problem's points as
rows (x_i, ‖x_i‖², 1), scores of centres against them by one batched matmul, and reductions over
the K centres as loops over K rows (a reduction over a short non-last axis is ~10x slower on a
CPU, masked writes 4-6x a comparison: benchmarks/RESULTS.md, clustering round two)."""

from __future__ import annotations

import torch


def augmented(X: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, n, d + 2] rows (x_i, ‖x_i‖², 1), zero at padding: one matmul with them gives both
    the E-step's scores (a row per centre: linear, quadratic and constant coefficients) and the
    M-step's sums Σ γ_ik (x_i, ‖x_i‖², 1) (a padded point adds nothing)."""
    sq = X.square().sum(-1, keepdim=True)
    return torch.cat([X, sq, torch.ones_like(sq)], -1) * mask[..., None].to(X.dtype)


def scores(aug: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """[B, K, n] coef_k · (x_i, ‖x_i‖², 1), one batched matmul (coef [B, K, d + 2]: a row per
    centre; reductions over k then run along a short leading axis, vectorised over points)."""
    return torch.bmm(coef, aug.transpose(1, 2))


def nearest_scores(aug: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[B, K, n] ‖μ_k‖² − 2 μ_kᵀx_i = ‖x_i − μ_k‖² − ‖x_i‖² (scikit-learn's expansion)."""
    c2 = (centres * centres).sum(-1, keepdim=True)
    return scores(aug, torch.cat([-2 * centres, torch.zeros_like(c2), c2], -1))


def argmin_rows(t: torch.Tensor) -> torch.Tensor:
    """argmin over dim 1 of t [B, K, n] (the first on ties, as torch.argmin), a loop over the K
    rows: torch's reduction over a short non-last axis is ~10x slower on a CPU."""
    best, idx = t[:, 0].clone(), torch.zeros_like(t[:, 0], dtype=torch.long)
    for k in range(1, t.shape[1]):
        better = t[:, k] < best
        torch.minimum(best, t[:, k], out=best)
        idx = torch.where(better, k, idx)
    return idx


def argmin_onehot(t: torch.Tensor) -> torch.Tensor:
    """The one-hot [B, K, n] (t's dtype) of `argmin_rows(t)` without the index: row k is the
    argmin where t_k is the minimum and below every earlier row (the first on ties). Whole-
    tensor comparisons: ~2x faster than the index and a one-hot of it (masked writes are slow)."""
    before = torch.empty_like(t)  # before[:, k] = min(t[:, :k]), +inf for k = 0
    before[:, 0] = float("inf")
    before[:, 1] = t[:, 0]
    for k in range(2, t.shape[1]):
        torch.minimum(before[:, k - 1], t[:, k - 1], out=before[:, k])
    low = torch.minimum(before[:, -1], t[:, -1])[:, None]
    return ((t <= low) & (t < before)).to(t.dtype)


def max_rows(t: torch.Tensor, op=torch.maximum) -> torch.Tensor:
    """max (op=torch.minimum: min) over dim 1 of t [B, K, n] -> [B, 1, n] (a loop over the K
    rows, as `argmin_rows`)."""
    m = op(t[:, 0], t[:, 1])
    for k in range(2, t.shape[1]):
        op(m, t[:, k], out=m)
    return m[:, None]


def squared_distances(X: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[B, n, K] ‖x_i − μ_k‖² as ‖x_i‖² − 2 x_iᵀμ_k + ‖μ_k‖² (as scikit-learn computes it; no
    [B, n, K, d] temporary), clamped at 0."""
    c2 = centres.square().sum(-1, keepdim=True)
    d2 = torch.baddbmm(c2, centres, X.transpose(1, 2), alpha=-2)
    return (d2 + X.square().sum(-1)[:, None, :]).clamp(min=0).transpose(1, 2)


def random_points(X, mask, K, gen) -> torch.Tensor:
    """Indices [B, K] of K distinct real points per prompt, uniformly."""
    keys = torch.rand(mask.shape, generator=gen, device=X.device, dtype=torch.float64)
    return keys.masked_fill(~mask, -1.0).topk(K, dim=1).indices


def kmeans_plus_plus(X, mask, K, gen) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre a uniform real point,
    each next one a point drawn with probability ∝ its squared distance to the nearest centre
    chosen so far (uniform among real points if all distances are 0). Returns [B, K, d]."""
    B, n, d = X.shape
    m = mask.to(X.dtype)
    first = torch.multinomial(m, 1, generator=gen)  # [B, 1]
    centres = [torch.gather(X, 1, first[..., None].expand(B, 1, d))]
    d2 = squared_distances(X, centres[0])[..., 0] * m
    for _ in range(1, K):
        p = torch.where(d2.sum(1, keepdim=True) > 0, d2, m)
        idx = torch.multinomial(p, 1, generator=gen)
        c = torch.gather(X, 1, idx[..., None].expand(B, 1, d))
        centres.append(c)
        d2 = torch.minimum(d2, squared_distances(X, c)[..., 0] * m)
    return torch.cat(centres, 1)
