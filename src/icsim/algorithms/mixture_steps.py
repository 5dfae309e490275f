"""The batched E- and M-steps and initialisations shared by the mixture-of-regressions EM
variants (`mixture_em`): what every step reuses is computed once from the fixed context
(`em_design`, `symmetric_operators`), so a step is a few batched products."""

from __future__ import annotations

from typing import NamedTuple

import torch

from icsim.errors import InputError
from icsim.tasks.base import Problem


class EMDesign(NamedTuple):
    """What every EM step reuses, computed once from the fixed context (`em_design`)."""

    Xt: torch.Tensor  # Xᵀ [B, d, n]
    moments: torch.Tensor | None  # [B, n, d(d+1)/2 + d]: x_i x_iᵀ's upper triangle, then y_i x_i
    full: torch.Tensor | None  # [d²]: where each entry of a d×d Gram matrix sits in `moments`


# -- the E- and M-steps, shared by every variant ----------------------------------------------


def em_design(X, y, K: int, moments: bool = True) -> EMDesign:
    """Xᵀ and, where they are small, the per-point moments (x_i x_iᵀ, y_i x_i) that turn the K
    Gram matrices and right-hand sides of an M-step into one batched product r @ moments:
    d(d+3)/2 multiply-adds a point and component (65 for d = 10) instead of d² + d after
    weighting X, and no [B, K, d, n] temporary. Kept when d(d+3)/2 <= 4Kd numbers a point
    (d <= 8K − 3), else the M-step weights X at every step."""
    d = X.shape[-1]
    Xt = X.transpose(1, 2).contiguous()
    if not moments or d + 3 > 8 * K:
        return EMDesign(Xt, None, None)
    i, j = torch.triu_indices(d, d, device=X.device)
    full = torch.empty(d, d, dtype=torch.long, device=X.device)
    full[i, j] = full[j, i] = torch.arange(len(i), device=X.device)
    rows = [X[..., a : a + 1] * X[..., a:] for a in range(d)]  # (a, b ≥ a), as triu_indices
    m = torch.cat([*rows, X * y.unsqueeze(-1)], -1)
    return EMDesign(Xt, m, full.flatten())


def e_step(Xt, y, betas, weights, noise_std: float) -> torch.Tensor:
    """r_ik ∝ π_k exp(−(y_i − x_iᵀβ_k)²/2σ²) as [B, K, n] from Xᵀ [B, d, n] (the E-step)."""
    resid = torch.baddbmm(y.unsqueeze(1), betas, Xt, alpha=-1)  # y_i − x_iᵀβ_k [B, K, n]
    logits = resid.square_().div_(-2 * noise_std**2).add_(weights.log().unsqueeze(-1))
    return torch.softmax(logits, 1)


def responsibilities(X, y, betas, weights, noise_std: float) -> torch.Tensor:
    """r_ik ∝ π_k exp(−(y_i − x_iᵀβ_k)²/2σ²), [B, n, K] (the E-step)."""
    return e_step(X.transpose(1, 2), y, betas, weights, noise_std).transpose(1, 2)


def weighted_least_squares(X, y, r, design: EMDesign | None = None) -> torch.Tensor:
    """β_k = (Σ_i r_ik x_i x_iᵀ)⁻¹ Σ_i r_ik y_i x_i, [B, K, d], for r [B, K, n] (the closed-form
    M-step): the Gram matrices and right-hand sides as one batched product (`em_design`), solved
    by Cholesky (LU where one is not PD)."""
    B, K, n = r.shape
    d = X.shape[-1]
    design = em_design(X, y, K) if design is None else design
    if design.moments is not None:
        m = torch.bmm(r, design.moments)  # [B, K, d(d+1)/2 + d]
        G = m.index_select(-1, design.full).view(B, K, d, d)
        h = m[..., -d:].unsqueeze(-1)
    else:
        Xr = (r.unsqueeze(2) * design.Xt.unsqueeze(1)).view(B, K * d, n)
        G = torch.bmm(Xr, X).view(B, K, d, d)
        h = torch.bmm(Xr, y.unsqueeze(-1)).view(B, K, d, 1)
    L, info = torch.linalg.cholesky_ex(G)
    if bool((info == 0).all()):
        return torch.cholesky_solve(h, L).squeeze(-1)
    return torch.linalg.solve(G, h).squeeze(-1)


def q_gradient(X, y, r, betas, Xt=None) -> torch.Tensor:
    """∇_{β_k} (1/n) Σ_i r_ik·(−½)(y_i − x_iᵀβ_k)² = (1/n) Σ_i r_ik (y_i − x_iᵀβ_k) x_i, [B, K, d],
    for r [B, K, n]."""
    Xt = X.transpose(1, 2) if Xt is None else Xt
    resid = torch.baddbmm(y.unsqueeze(1), betas, Xt, alpha=-1)
    return torch.bmm(resid.mul_(r), X).div_(X.shape[1])


def tanh_(u: torch.Tensor) -> torch.Tensor:
    """tanh(u) in place, as 2·sigmoid(2u) − 1 (absolute error ~1e-16; exactly 0 at 0): ATen's
    float64 tanh costs 3–7× its sigmoid per element on CPU (measured on this project's AVX2
    machine), and symmetric EM evaluates n of them a problem and step."""
    return torch.sigmoid_(u.mul_(2)).mul_(2).sub_(1)


def symmetric_weights(X, y, beta, noise_std: float) -> torch.Tensor:
    """w_i = tanh(y_i⟨x_i, β⟩/σ²) = r_i1 − r_i2 for β₂ = −β₁, π = ½ (Balakrishnan et al. 2017)."""
    return tanh_(y * torch.einsum("bnd,bd->bn", X, beta) / noise_std**2)


def signal_scale(y: torch.Tensor, noise_std: float) -> torch.Tensor:
    """‖β‖ estimated from E y² = ‖β‖² + σ² (x ~ N(0, I)): sqrt(max(mean y² − σ², 0)), [B]."""
    if y.shape[1] == 0:
        return y.new_zeros(y.shape[0])
    return (y.square().mean(1) - noise_std**2).clamp(min=0).sqrt()


def spectral_directions(X, y, k: int) -> torch.Tensor:
    """The top-k eigenvectors of (1/n) Σ y_i² x_i x_iᵀ, [B, d, k], each signed so that its
    largest-magnitude coordinate is positive (E y²xxᵀ = (‖β‖² + σ²)I + 2ββᵀ in the symmetric
    model: the top one is ±β/‖β‖)."""
    M = torch.einsum("bn,bnd,bne->bde", y.square(), X, X) / max(X.shape[1], 1)
    _, vecs = torch.linalg.eigh(M)
    top = vecs.flip(-1)[..., :k]
    idx = top.abs().argmax(-2, keepdim=True)
    return top * torch.sign(torch.gather(top, -2, idx))


def initial_betas(problem: Problem, K: int, how: str, given, seed: int, noise_std: float):
    """β⁰ [B, K, d]: "random" (uniform directions, seeded; in the spectral subspace's stead, the
    whole space), "spectral" (random unit combinations of the top-K spectral directions; the
    top direction itself when K = 1) or "given" ([K, d] or [B, K, d]); random and spectral are
    scaled to `signal_scale`."""
    X, y = problem.X, problem.y
    B, _, d = X.shape
    if how == "given":
        if given is None:
            raise InputError("initialization='given' needs initial=[K, d] or [B, K, d] betas.")
        g = torch.as_tensor(given).to(device=X.device, dtype=X.dtype)
        if g.shape[-2:] != (K, d) or g.dim() not in (2, 3):
            raise InputError(
                f"initial must have shape [{K}, {d}] or [B, {K}, {d}], got {tuple(g.shape)}."
            )
        return g.expand(B, K, d).clone()
    gen = torch.Generator(device=X.device).manual_seed(seed)
    scale = signal_scale(y, noise_std)[:, None, None]
    if how == "random":
        u = torch.randn(B, K, d, generator=gen, device=X.device, dtype=torch.float64).to(X.dtype)
    else:
        k = min(K, d)
        V_ = spectral_directions(X, y, k)
        if K == 1:
            u = V_.transpose(-1, -2)
        else:
            c = torch.randn(B, K, k, generator=gen, device=X.device, dtype=torch.float64)
            u = torch.einsum("bdj,bkj->bkd", V_, c.to(X.dtype))
    return u / u.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(X.dtype).tiny) * scale


class SymmetricOperators(NamedTuple):
    """The fixed context's two halves of a symmetric EM step: u = β·score, β⁺ = tanh(u)·update."""

    score: torch.Tensor  # y_i x_i/σ² as columns [B, d, n] (a transposed view)
    update: torch.Tensor  # diag(y) X (XᵀX)⁻¹ [B, n, d]: β⁺ᵀ = wᵀ·update


def gram_inverse(X: torch.Tensor) -> torch.Tensor:
    """(XᵀX)⁻¹ [B, d, d] by Cholesky (LU where XᵀX is not PD)."""
    G = X.transpose(1, 2) @ X
    L, info = torch.linalg.cholesky_ex(G)
    if bool((info == 0).all()):
        return torch.cholesky_inverse(L)
    return torch.linalg.inv(G)


def symmetric_operators(X, y, noise_std: float) -> SymmetricOperators:
    Xy = X * y.unsqueeze(-1)
    return SymmetricOperators((Xy / noise_std**2).transpose(1, 2), Xy @ gram_inverse(X))
