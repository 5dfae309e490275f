"""Mixtures of linear regressions in context: each pair draws its own component (per sample; Jin,
Balasubramanian, Lai 2024) or each prompt draws one of m fixed vectors (per prompt; Pathak, Sen,
Kong, Das, ICLR 2024). PAPERS.md §6."""

from __future__ import annotations

import math

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.tasks.base import TASKS, Task, TaskBatch

MIXING = ("per_sample", "per_prompt")
COMPONENTS = ("per_prompt", "fixed")


@TASKS.register("mixture_linear_regression")
class MixtureLinearRegression(Task):
    """y_i = ⟨β_{z_i}, x_i⟩ + σ ε_i, x_i ~ N(0, I_d), ε_i ~ N(0, 1), components β_1..β_K.

    Parameters
    - dim: d (default 5).
    - n_components: K >= 1 (default 2; m in Pathak et al., who use m ∈ {5, 20}).
    - mixing: "per_sample" (default, Jin et al. 2024): every pair draws z_i ~ π;
      "per_prompt" (Pathak et al. 2024): every prompt draws one z ~ π for all its pairs.
    - weights: π, K non-negative numbers summing to 1 (default uniform, ½ each for K = 2).
    - noise_std: σ >= 0 (default 1). "per_sample" needs σ > 0 (‖β‖ is set through the SNR).
    - snr: ‖β_k‖/σ >= 0 for "per_sample" (default 2): every β_k has norm snr·σ and a uniform
      direction. "per_prompt" draws β_k ~ N(0, I_d) as Pathak et al. and ignores snr.
    - symmetric: β_2 = −β_1 (Balakrishnan, Wainwright, Yu 2017's symmetric two-component model).
      Default: True for K = 2 per sample, else False; needs K = 2.
    - components: "per_prompt" (fresh components in every prompt; the default per sample) or
      "fixed" (one set drawn once from `component_seed` on the CPU, shared by every prompt and
      every device; the default per prompt, Pathak et al.'s fixed set).
    Truth: `components` [B, K, d], `labels` z [B, n] (int64), `weights` π [B, K], `snr` [B]
    (‖β_z‖/σ per prompt in "per_prompt" mode; inf when σ = 0), `w_star` [B, d] = β_{z} per prompt
    ("per_prompt") or β_1 ("per_sample"; in the symmetric model β* is identified up to sign).
    """

    name = "mixture_linear_regression"

    def __init__(
        self,
        dim: int = 5,
        n_components: int = 2,
        mixing: str = "per_sample",
        weights: tuple[float, ...] | None = None,
        noise_std: float = 1.0,
        snr: float = 2.0,
        symmetric: bool | None = None,
        components: str | None = None,
        component_seed: int = 0,
    ):
        self.dim = V.positive_int("dim", dim)
        self.n_components = K = V.positive_int("n_components", n_components)
        self.mixing = V.choice("mixing", mixing, MIXING)
        self.noise_std = V.number("noise_std", noise_std, low=0)
        self.snr = V.number("snr", snr, low=0)
        if mixing == "per_sample" and self.noise_std == 0:
            raise InputError(
                "noise_std=0 leaves ‖β‖ = snr·σ undefined for mixing='per_sample'; use "
                "noise_std > 0 (the SNR sets ‖β‖ = snr·noise_std)."
            )
        self.weights = _check_weights(weights, K)
        if symmetric is None:
            symmetric = K == 2 and mixing == "per_sample"
        if symmetric and K != 2:
            raise InputError(
                f"symmetric=True is the two-component model β₂ = −β₁; got n_components={K}. "
                "Use n_components=2 or symmetric=False."
            )
        self.symmetric = bool(symmetric)
        if components is None:
            components = "per_prompt" if mixing == "per_sample" else "fixed"
        self.components = V.choice("components", components, COMPONENTS)
        self.component_seed = V.seed("component_seed", component_seed)

    def _draw_components(self, B: int, gen, device) -> torch.Tensor:
        """[B, K, d] in float64: per-prompt draws from `gen`, or the fixed set broadcast."""
        K, d = self.n_components, self.dim
        if self.components == "fixed":
            g = torch.Generator(device="cpu").manual_seed(self.component_seed)
            raw = torch.randn(1, K, d, generator=g, dtype=torch.float64).to(device)
        else:
            raw = torch.randn(B, K, d, generator=gen, device=device, dtype=torch.float64)
        if self.mixing == "per_sample":  # uniform direction, norm snr·σ
            raw = raw / raw.norm(dim=-1, keepdim=True).clamp(min=1e-300) * self.snr * self.noise_std
        if self.symmetric:
            raw = torch.stack([raw[:, 0], -raw[:, 0]], 1)
        return raw.expand(B, K, d)

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d, K = batch_size, n_points, self.dim, self.n_components
        betas = self._draw_components(B, gen, device).to(dtype)
        pi = torch.tensor(self.weights, device=device, dtype=torch.float64)
        rows = 1 if self.mixing == "per_prompt" else n
        z = torch.multinomial(pi.expand(B, K), rows, replacement=True, generator=gen)
        z = z.expand(B, n).contiguous()
        xs = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype)
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0
        coef = torch.gather(betas, 1, z[..., None].expand(B, n, d))  # β_{z_i} [B, n, d]
        ys = (xs * coef).sum(-1)
        if self.noise_std > 0:
            ys = ys + self.noise_std * torch.randn(B, n, generator=gen, device=device, dtype=dtype)
        w_star = coef[:, 0] if self.mixing == "per_prompt" else betas[:, 0]
        norm = w_star.double().norm(dim=-1)
        snr = norm / self.noise_std if self.noise_std > 0 else torch.full_like(norm, math.inf)
        truth = {
            "components": betas.contiguous(),
            "labels": z,
            "weights": pi.to(dtype).expand(B, K).contiguous(),
            "snr": snr.to(dtype),
            "w_star": w_star.contiguous(),
        }
        return TaskBatch(xs=xs, ys=ys, task=self.name, truth=truth)


def _check_weights(weights, K: int) -> tuple[float, ...]:
    if weights is None:
        return (1.0 / K,) * K
    try:
        pi = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        raise InputError(
            f"weights must be {K} numbers summing to 1, got {weights!r}; e.g. weights="
            f"{(round(1 / K, 4),) * K}."
        ) from None
    if len(pi) != K or any(not math.isfinite(w) or w < 0 for w in pi):
        raise InputError(
            f"weights must be {K} non-negative numbers (one per component), got {weights!r}."
        )
    if abs(sum(pi) - 1) > 1e-9:
        raise InputError(
            f"weights must sum to 1, got {weights!r} (sum {sum(pi):.6g}); divide them by their sum."
        )
    return pi
