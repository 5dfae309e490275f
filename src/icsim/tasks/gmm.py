"""Clustering prompts: n points from a mixture of K Gaussians, one mixture per prompt
(He, Chen, Cao, Fan, Liu 2025, "Transformers versus the EM algorithm in multi-class
clustering"; the TGMM recipe of Chen, Wu, Fang 2025 as an option). Unsupervised: the labels
z_i are kept as ground truth, never shown to a model."""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.tasks.base import TASKS, Task, TaskBatch, haar_orthogonal

CENTRES = ("separated", "tgmm")
WEIGHTS = ("uniform", "dirichlet", "tgmm")
COVARIANCES = ("isotropic", "anisotropic")


def _range(name: str, value, low_open: bool) -> tuple[float, float]:
    """A number or a (low, high) pair, checked > 0 (or >= 0)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise InputError(f"{name} must be a number or a (low, high) pair, got {value!r}.")
    lo, hi = (V.number(name, v, low=0, low_open=low_open) for v in pair)
    if lo > hi:
        raise InputError(f"{name} range must have low <= high, got {value!r}.")
    return lo, hi


def pairwise_distances(mu: torch.Tensor) -> torch.Tensor:
    """[B, K, K] Euclidean distances between the centres, +inf on the diagonal."""
    dist = torch.cdist(mu, mu)
    K = mu.shape[1]
    eye = torch.eye(K, dtype=torch.bool, device=mu.device)
    return dist.masked_fill(eye, float("inf"))


@TASKS.register("gmm_clustering")
class GMMClustering(Task):
    """x_i = μ_{z_i} + σ ε_i, z_i ~ Categorical(π), ε_i ~ N(0, I_d) (or N(0, Σ_k) with
    Σ_k of mean eigenvalue 1 when anisotropic), one mixture per prompt (He et al. 2025).

    Parameters (defaults: d = 2, K = 3, σ = 1, Δ = 4)
    - dim, n_clusters: d and K >= 2.
    - sigma: σ > 0, or a (low, high) range drawn uniformly per prompt.
    - separation: Δ, the minimum distance between two centres, or a (low, high) range drawn
      per prompt (the theory's signal-to-noise is Δ/σ; minimax misclustering exp(−Δ²/8σ²)).
    - centres: "separated" (default): Gaussian centres rescaled per prompt so that their minimum
      pairwise distance is exactly Δ; "tgmm": U(−5, 5)^d with pairwise cosine < 0.8 (Chen, Wu,
      Fang 2025, by rejection; Δ is then the drawn minimum distance and `separation` unused).
    - weights: "uniform" (π_k = 1/K), "dirichlet" (π ~ Dir(α·1)), "tgmm" (∝ sorted U(0.2, 0.8)).
    - covariance: "isotropic" or "anisotropic" (Σ_k = U_k diag(λ) U_kᵀ, U_k Haar, λ geometric
      from 1 to 1/condition_number rescaled to mean 1: "beyond the assumptions").
    - min_points: if set, prompt lengths vary within the batch, n_b ~ U{min_points..n}; the
      points past n_b are zero and `mask` [B, n] marks the real ones (`lengths` [B]).
    Truth: `mu` [B, K, d], `z` [B, n] (long; −1 at padding), `sigma` [B], `separation` [B]
    (the realised minimum distance), `weights` [B, K], `mask` [B, n] bool, `lengths` [B];
    `Sigma` [B, K, d, d] when anisotropic. `ys` holds z as floats (the labels).
    """

    name = "gmm_clustering"

    def __init__(
        self,
        dim: int = 2,
        n_clusters: int = 3,
        sigma: float | tuple[float, float] = 1.0,
        separation: float | tuple[float, float] = 4.0,
        centres: str = "separated",
        weights: str = "uniform",
        dirichlet_alpha: float = 1.0,
        covariance: str = "isotropic",
        condition_number: float = 1.0,
        min_points: int | None = None,
    ):
        self.dim = V.positive_int("dim", dim)
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 2:
            raise InputError(
                f"n_clusters must be an integer >= 2 (a clustering has at least two "
                f"clusters), got {n_clusters!r}."
            )
        self.n_clusters = n_clusters
        self.sigma = _range("sigma", sigma, low_open=True)
        self.separation = _range("separation", separation, low_open=False)
        self.centres = V.choice("centres", centres, CENTRES)
        self.weights = V.choice("weights", weights, WEIGHTS)
        self.dirichlet_alpha = V.number("dirichlet_alpha", dirichlet_alpha, low=0, low_open=True)
        self.covariance = V.choice("covariance", covariance, COVARIANCES)
        self.condition_number = V.number("condition_number", condition_number, low=1)
        if min_points is not None and (
            isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 2
        ):
            raise InputError(f"min_points must be None or an integer >= 2, got {min_points!r}.")
        self.min_points = min_points

    def _uniform(self, lo_hi, B, gen, device, dtype):
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(B, generator=gen, device=device, dtype=dtype)

    def _centres(self, B, gen, device, dtype):
        K, d = self.n_clusters, self.dim
        if self.centres == "separated":
            mu = torch.randn(B, K, d, generator=gen, device=device, dtype=dtype)
            delta = self._uniform(self.separation, B, gen, device, dtype)
            current = pairwise_distances(mu).flatten(1).amin(1)
            return mu * (delta / current.clamp(min=torch.finfo(dtype).tiny))[:, None, None]
        # TGMM: U(−5, 5)^d, redrawn for the prompts with a pair of cosine >= 0.8
        mu = torch.empty(B, K, d, device=device, dtype=dtype)
        todo = torch.ones(B, dtype=torch.bool, device=device)
        for _ in range(1000):  # rounds of rejection over the whole batch, not a loop per prompt
            draw = 10 * torch.rand(B, K, d, generator=gen, device=device, dtype=dtype) - 5
            unit = draw / draw.norm(dim=-1, keepdim=True).clamp(min=1e-30)
            cos = unit @ unit.transpose(1, 2)
            eye = torch.eye(K, dtype=torch.bool, device=device)
            ok = (cos.masked_fill(eye, -1) < 0.8).flatten(1).all(1)
            take = todo & ok
            mu[take] = draw[take]
            todo = todo & ~ok
            if not bool(todo.any()):
                return mu
        raise InputError(
            f"centres='tgmm' found no {K} centres with pairwise cosine < 0.8 in d = {d} after "
            "1000 rounds; use fewer clusters, a larger dim, or centres='separated'."
        )

    def _weights(self, B, gen, device, dtype):
        K = self.n_clusters
        if self.weights == "uniform":
            return torch.full((B, K), 1.0 / K, device=device, dtype=dtype)
        if self.weights == "dirichlet":
            g = -torch.log(torch.rand(B, K, generator=gen, device=device, dtype=dtype))
            if self.dirichlet_alpha != 1.0:  # Gamma(α) draws through torch's sampler
                conc = torch.full((B, K), self.dirichlet_alpha, device=device, dtype=dtype)
                g = torch._standard_gamma(conc, generator=gen)
            return g / g.sum(1, keepdim=True)
        w = torch.sort(0.2 + 0.6 * torch.rand(B, K, generator=gen, device=device, dtype=dtype))[0]
        return w / w.sum(1, keepdim=True)

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d, K = batch_size, n_points, self.dim, self.n_clusters
        if n < K:
            raise InputError(
                f"n_points must be at least n_clusters = {K} (one point per cluster), got {n}; "
                "sample more points or use fewer clusters."
            )
        if self.min_points is not None and not K <= self.min_points <= n:
            raise InputError(
                f"min_points must lie in [n_clusters, n_points] = [{K}, {n}], got "
                f"{self.min_points}; change min_points or n_points."
            )
        mu = self._centres(B, gen, device, dtype)
        pi = self._weights(B, gen, device, dtype)
        sigma = self._uniform(self.sigma, B, gen, device, dtype)
        z = torch.multinomial(pi, n, replacement=True, generator=gen)  # [B, n]
        eps = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype)
        truth = {}
        if self.covariance == "anisotropic":
            lam = torch.as_tensor(self.condition_number, dtype=torch.float64)
            lam = lam ** -torch.linspace(0, 1, d, dtype=torch.float64)
            lam = (lam * d / lam.sum()).to(device=device, dtype=dtype)  # mean eigenvalue 1
            U = haar_orthogonal(B * K, d, gen, device, dtype).view(B, K, d, d)
            root = U * lam.sqrt()  # Σ_k^{1/2} = U diag(√λ), Σ_k = U diag(λ) Uᵀ
            truth["Sigma"] = (U * lam) @ U.transpose(-1, -2)
            idx = z[..., None, None].expand(B, n, d, d)
            eps = torch.einsum("bnij,bnj->bni", torch.gather(root, 1, idx), eps)
        xs = torch.gather(mu, 1, z[..., None].expand(B, n, d)) + sigma[:, None, None] * eps
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0
        if self.min_points is None:
            lengths = torch.full((B,), n, device=device, dtype=torch.long)
        else:
            span = n - self.min_points + 1
            lengths = self.min_points + torch.randint(span, (B,), generator=gen, device=device)
        mask = torch.arange(n, device=device)[None] < lengths[:, None]
        xs = xs * mask[..., None]
        z = torch.where(mask, z, -1)
        separation = pairwise_distances(mu).flatten(1).amin(1)
        truth.update(mu=mu, z=z, sigma=sigma, separation=separation, weights=pi)
        truth.update(mask=mask, lengths=lengths)
        return TaskBatch(xs=xs, ys=z.to(dtype), task=self.name, truth=truth)


def bundled_dataset(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(X [N, F] float64, y [N] long) of a labelled data set that ships with scikit-learn (no
    download): "iris" (150 × 4, 3 classes) or "digits" (1797 × 64, 10 classes)."""
    from sklearn import datasets

    loaders = {"iris": datasets.load_iris, "digits": datasets.load_digits}
    V.choice("dataset", name, tuple(loaders))
    X, y = loaders[name](return_X_y=True)
    return torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y, dtype=torch.long)


def labelled_prompts(
    X, y, n_prompts: int, n_points: int, n_clusters: int, dim: int, *, generator, device="cpu"
) -> TaskBatch:
    """Clustering prompts from a labelled data set, clusters = classes: features standardised,
    projected on their top-`dim` principal directions (zero-padded when `dim` exceeds the
    features), scaled to unit within-class variance per coordinate (a change of units that
    uses the labels, so σ ≈ 1 as in `gmm_clustering`); each prompt draws K classes and
    `n_points` distinct points of them (fewer if the K classes hold fewer). Truth as the task's:
    `z` (0..K−1 in the order the classes were drawn), `mu` (class means), `sigma` (1), `mask`."""
    X = (X - X.mean(0)) / X.std(0).clamp(min=1e-12)
    V_ = torch.linalg.svd(X, full_matrices=False).Vh[:dim].T
    Z = torch.nn.functional.pad(X @ V_, (0, max(0, dim - V_.shape[1])))
    C = int(y.max()) + 1
    if n_clusters > C:
        raise InputError(f"n_clusters = {n_clusters} exceeds the data set's {C} classes.")
    means = torch.stack([Z[y == c].mean(0) for c in range(C)])
    scale = (Z - means[y]).square().mean().sqrt()
    Z, means, y = (Z / scale).to(device), (means / scale).to(device), y.to(device)
    P, K = n_prompts, n_clusters
    classes = torch.rand(P, C, generator=generator, device=device).argsort(1)[:, :K]
    allowed = (y[None, :, None] == classes[:, None, :]).any(-1)  # [P, N]
    keys = torch.rand(P, len(y), generator=generator, device=device).masked_fill(~allowed, -1)
    idx = keys.topk(min(n_points, int(allowed.sum(1).min())), dim=1).indices
    z = (y[idx][..., None] == classes[:, None, :]).to(torch.long).argmax(-1)
    truth = {"z": z, "mask": torch.ones_like(z, dtype=torch.bool), "mu": means[classes].float(),
             "sigma": torch.ones(P, device=device)}  # fmt: skip
    return TaskBatch(xs=Z[idx].float(), ys=z.float(), task="labelled_data", truth=truth)
