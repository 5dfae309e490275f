"""Metrics of spectral estimates (He et al. 2025), each defined once: sign-free eigenvector
cosine, principal-angle subspace distance, eigenvalue relative error, misclustering up to a
global sign."""

from __future__ import annotations

import torch

from icsim.analysis.metrics import cosine_similarity


def abs_cosine(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """|cos| between estimated and true eigenvectors, column by column (an eigenvector is defined
    up to sign): [..., d, k] twice -> [..., k]; 0 where either is zero."""
    return cosine_similarity(estimate, truth, dim=-2).abs()


def subspace_distance(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """sin θ_max, the largest principal angle between span(estimate) and span(truth) (Golub &
    Van Loan §6.4.3): both [..., d, k] are orthonormalised, σ_min(Q_aᵀQ_b) = cos θ_max.
    0 for the same subspace, 1 when some direction of one is orthogonal to the other; -> [...]."""
    qa = torch.linalg.qr(estimate.double())[0]
    qb = torch.linalg.qr(truth.double())[0]
    smin = torch.linalg.svdvals(qa.transpose(-1, -2) @ qb)[..., -1].clamp(max=1.0)
    return (1 - smin.square()).clamp(min=0).sqrt().to(estimate.dtype)


def eigenvalue_relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """|λ̂ − λ|/|λ| elementwise (absolute error where λ = 0)."""
    diff = (estimate - truth).abs()
    return torch.where(
        truth != 0, diff / truth.abs().clamp(min=torch.finfo(truth.dtype).tiny), diff
    )


def misclustering_up_to_sign(labels: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Fraction of points mislabelled, minimised over the global sign (two classes ±1):
    [..., N] twice -> [...]."""
    wrong = (torch.sign(labels) != torch.sign(truth)).to(torch.float64).mean(-1)
    return torch.minimum(wrong, 1 - wrong)
