"""Logistic regression prompts: features with ‖a_i‖ ≤ 1 and labels y_i ∈ {−1, +1}
(Giannou et al. 2025, §5: the in-context Newton's method setting)."""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.tasks.base import TASKS, Task, TaskBatch
from icsim.tasks.linear_regression import sample_covariance_sqrt

X_DISTRIBUTIONS = ("ball", "gaussian_normalised", "gaussian")
LABEL_MODELS = ("bernoulli", "sign")


@TASKS.register("logistic_regression")
class LogisticRegression(Task):
    """a_i drawn from a Gaussian of condition number κ and brought into the unit ball, labels
    y_i ∈ {−1, +1} from w* ~ N(0, w_scale² I_d) (Giannou et al. 2025 assume ‖a_i‖ ≤ 1).

    Parameters
    - dim: d (default 5, the paper's logistic experiments: d = 5, 26 points).
    - w_scale: standard deviation of w*'s entries (default 1).
    - condition_number: κ >= 1 of the Gaussian's covariance Σ = U diag(λ) Uᵀ (U Haar per prompt,
      λ from 1 down to 1/κ with `eigenvalue_spacing` "geometric" (default) or "linear"); κ = 1
      gives Σ ∝ I. Their code uses κ ∈ {1, 10, 50}.
    - x_distribution:
      "ball" (default): z ~ N(0, Σ/tr Σ) (so E‖z‖² = 1), a = z / max(1, ‖z‖): points inside
        the ball stay, points outside are pulled onto the unit sphere; ‖a‖ ≤ 1 always.
      "gaussian_normalised": z ~ N(0, Σ), a = z/‖z‖ on the unit sphere.
      "gaussian": z ~ N(0, Σ) unnormalised, as in their code (violates ‖a‖ ≤ 1: the
        constructions' guarantees do not apply).
    - label_model: "bernoulli" (default): P(y_i = 1) = sigmoid(w*ᵀa_i), the logistic model;
      "sign": y_i = sign(w*ᵀa_i) (their code; sign(0) = +1), noiseless and often separable.
    Truth: `w_star` [B, d] and `Sigma` [B, d, d], the covariance of z before normalisation.
    `active_dims` zeroes the trailing coordinates of z before normalisation.
    """

    name = "logistic_regression"

    def __init__(
        self,
        dim: int = 5,
        w_scale: float = 1.0,
        condition_number: float = 1.0,
        x_distribution: str = "ball",
        label_model: str = "bernoulli",
        eigenvalue_spacing: str = "geometric",
    ):
        self.dim = V.positive_int("dim", dim)
        self.w_scale = V.number("w_scale", w_scale, low=0)
        self.condition_number = V.number("condition_number", condition_number, low=1)
        self.x_distribution = V.choice("x_distribution", x_distribution, X_DISTRIBUTIONS)
        self.label_model = V.choice("label_model", label_model, LABEL_MODELS)
        self.eigenvalue_spacing = V.choice(
            "eigenvalue_spacing", eigenvalue_spacing, ("geometric", "linear")
        )
        if dim == 1 and condition_number != 1:
            raise V.InputError(
                f"condition_number={condition_number} needs dim >= 2 (one dimension has no "
                "spread of eigenvalues); use dim >= 2 or condition_number=1."
            )

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d = batch_size, n_points, self.dim
        if self.condition_number == 1.0:
            sigma = torch.eye(d, device=device, dtype=dtype).expand(B, d, d)
            sqrt = sigma
        else:
            sigma, sqrt = sample_covariance_sqrt(
                B, d, self.condition_number, 1.0, self.eigenvalue_spacing, gen, device, dtype
            )
        if self.x_distribution == "ball":
            # Σ/tr Σ: the trace (sum of the fixed eigenvalues) is the same for every prompt.
            trace = torch.diagonal(sigma, dim1=-2, dim2=-1).sum(-1)[:, None, None]
            sigma, sqrt = sigma / trace, sqrt / trace.sqrt()
        z = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype) @ sqrt
        if active_dims is not None and active_dims < d:
            z[..., active_dims:] = 0
        norm = z.norm(dim=-1, keepdim=True)
        if self.x_distribution == "ball":
            xs = z / norm.clamp(min=1.0)
        elif self.x_distribution == "gaussian_normalised":
            xs = z / norm.clamp(min=torch.finfo(dtype).tiny)
        else:
            xs = z
        w = torch.randn(B, d, generator=gen, device=device, dtype=dtype) * self.w_scale
        margin = torch.einsum("bnd,bd->bn", xs, w)
        if self.label_model == "bernoulli":
            u = torch.rand(B, n, generator=gen, device=device, dtype=dtype)
            positive = u < torch.sigmoid(margin)
        else:
            positive = margin >= 0
        ys = torch.where(positive, 1.0, -1.0).to(dtype)
        return TaskBatch(
            xs=xs, ys=ys, task=self.name, truth={"w_star": w, "Sigma": sigma.contiguous()}
        )
