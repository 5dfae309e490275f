"""Linear regression prompts (Garg et al. 2022; Fu et al. 2024 for ill-conditioned covariances)."""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.tasks.base import TASKS, Task, TaskBatch, haar_orthogonal


def sample_covariance_sqrt(
    batch, dim, condition_number, max_eigenvalue, spacing, gen, device, dtype
):
    """Σ = U diag(λ) Uᵀ, U Haar, λ from λ_max down to λ_max/κ; returns (Σ, Σ^½).

    spacing "two_level" (Fu et al. 2024's code): the scale matrix Σ^½ has √κ on d/2 directions,
    so Σ has λ_max on ⌊d/2⌋ directions and λ_max/κ on the rest."""
    if spacing == "geometric":
        t = torch.linspace(0, 1, dim, device=device, dtype=torch.float64)
        lam = max_eigenvalue * condition_number ** (-t)
    elif spacing == "two_level":
        lam = torch.full(
            (dim,), max_eigenvalue / condition_number, device=device, dtype=torch.float64
        )
        lam[: dim // 2] = max_eigenvalue
    else:
        lam = torch.linspace(
            max_eigenvalue,
            max_eigenvalue / condition_number,
            dim,
            device=device,
            dtype=torch.float64,
        )
    u = haar_orthogonal(batch, dim, gen, device, torch.float64)
    sigma = (u * lam) @ u.transpose(-1, -2)
    sqrt = (u * lam.sqrt()) @ u.transpose(-1, -2)
    return sigma.to(dtype), sqrt.to(dtype)


@TASKS.register("linear_regression")
class LinearRegression(Task):
    """y_i = w*ᵀx_i + σ ε_i with w* ~ N(0, scale² I_d) and x_i ~ N(0, Σ) (Garg et al. 2022).

    Parameters
    - dim: d.
    - noise_std: σ >= 0 (default 0, noiseless as in Garg et al.).
    - w_scale: standard deviation of w*'s entries (default 1).
    - condition_number: κ >= 1. κ = 1 (default) gives Σ = I; κ > 1 draws Σ = U diag(λ) Uᵀ
      per prompt, U Haar-random, λ from `max_eigenvalue` down to `max_eigenvalue`/κ with
      `eigenvalue_spacing` "geometric" (default: spread over all d directions), "linear", or
      "two_level" (Fu et al. 2024's covariance: λ_max on ⌊d/2⌋ directions, λ_max/κ on the rest —
      their scale matrix has κ' = √κ = 10 on d/2 directions for κ = 100).
    - x_distribution: "gaussian" (default) or "uniform" — x ~ U(−x_range, x_range)^d
      (von Oswald et al. 2023: x_range 1 in the paper, 0.5 in their code); Σ then is (x_range²/3) I.
    - sparsity: if set, w* keeps `sparsity` non-zero coordinates chosen uniformly (Garg et al.'s
      sparse linear regression; see also `sparse_linear_regression`).
    """

    name = "linear_regression"

    def __init__(
        self,
        dim: int = 20,
        noise_std: float = 0.0,
        w_scale: float = 1.0,
        condition_number: float = 1.0,
        max_eigenvalue: float = 1.0,
        eigenvalue_spacing: str = "geometric",
        x_distribution: str = "gaussian",
        x_range: float = 1.0,
        sparsity: int | None = None,
    ):
        self.dim = V.positive_int("dim", dim)
        self.noise_std = V.number("noise_std", noise_std, low=0)
        self.w_scale = V.number("w_scale", w_scale, low=0)
        self.condition_number = V.number("condition_number", condition_number, low=1)
        self.max_eigenvalue = V.number("max_eigenvalue", max_eigenvalue, low=0, low_open=True)
        self.eigenvalue_spacing = V.choice(
            "eigenvalue_spacing", eigenvalue_spacing, ("geometric", "linear", "two_level")
        )
        self.x_distribution = V.choice("x_distribution", x_distribution, ("gaussian", "uniform"))
        self.x_range = V.number("x_range", x_range, low=0, low_open=True)
        if x_distribution == "uniform" and (condition_number != 1 or max_eigenvalue != 1):
            raise V.InputError(
                "condition_number/max_eigenvalue apply to x_distribution='gaussian' only; "
                "drop them or use the gaussian distribution."
            )
        if dim == 1 and condition_number != 1:
            raise V.InputError(
                f"condition_number={condition_number} needs dim >= 2 (one dimension has no "
                "spread of eigenvalues); use dim >= 2 or condition_number=1."
            )
        if sparsity is not None:
            V.positive_int("sparsity", sparsity)
            if sparsity > dim:
                raise V.InputError(f"sparsity must be <= dim={dim}, got {sparsity}.")
        self.sparsity = sparsity

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d = batch_size, n_points, self.dim
        truth = {}
        if self.x_distribution == "uniform":
            u = torch.rand(B, n, d, generator=gen, device=device, dtype=dtype)
            xs = (2 * u - 1) * self.x_range
            sigma = torch.eye(d, device=device, dtype=dtype).expand(B, d, d) * self.x_range**2 / 3
        elif self.condition_number == 1.0:
            z = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype)
            xs = z * self.max_eigenvalue**0.5
            sigma = torch.eye(d, device=device, dtype=dtype).expand(B, d, d) * self.max_eigenvalue
        else:
            sigma, sqrt = sample_covariance_sqrt(
                B,
                d,
                self.condition_number,
                self.max_eigenvalue,
                self.eigenvalue_spacing,
                gen,
                device,
                dtype,
            )
            z = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype)
            xs = z @ sqrt
        w = torch.randn(B, d, generator=gen, device=device, dtype=dtype) * self.w_scale
        if self.sparsity is not None:
            keys = torch.rand(B, d, generator=gen, device=device)
            support = keys.argsort(dim=1)[:, : self.sparsity]
            mask = torch.zeros(B, d, device=device, dtype=dtype).scatter_(1, support, 1.0)
            w = w * mask
            truth["support"] = mask.bool()
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0
        ys = torch.einsum("bnd,bd->bn", xs, w)
        if self.noise_std > 0:
            ys = ys + self.noise_std * torch.randn(B, n, generator=gen, device=device, dtype=dtype)
        truth.update(w_star=w, Sigma=sigma)
        return TaskBatch(xs=xs, ys=ys, task=self.name, truth=truth)


@TASKS.register("sparse_linear_regression")
def sparse_linear_regression(
    dim: int = 20,
    sparsity: int = 3,
    noise_std: float = 0.0,
    w_scale: float = 1.0,
    condition_number: float = 1.0,
):
    """w* with `sparsity` = s non-zero N(0, scale²) coordinates (Garg et al. 2022 use s = 3)."""
    task = LinearRegression(
        dim=dim,
        noise_std=noise_std,
        w_scale=w_scale,
        condition_number=condition_number,
        sparsity=sparsity,
    )
    task.name = "sparse_linear_regression"
    return task
