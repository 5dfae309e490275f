"""Out-of-distribution prompts for linear regression (Garg et al. 2022, §4 and their eval.py).

Each condition changes the prompts at test time only:

- `skewed`: x = Σ^½ z, z ~ N(0, I), one Σ = U diag(λ) Uᵀ per evaluation with λ_i ∝ 1/i²
  (their scale matrix has eigenvalues 1/i) and tr Σ = d;
- `half_subspace`: x in one fixed ⌊d/2⌋-dimensional subspace, Σ = (d/⌊d/2⌋)·P, tr Σ = d;
- `scale_x=s`: x = s z; `scale_y=s`: y = s w*ᵀx (w* ~ N(0, I) scaled by s);
- `orthogonal`: the query after k examples is orthogonal to the span of those k xs, with the
  norm of the x it replaces (for k < d only: for k ≥ d that span is everything);
- `overlapping`: the query after k ≥ 1 examples is one of them, chosen uniformly;
- `orthants`: every in-context x has the same random sign pattern (one orthant per prompt),
  the query is drawn as usual (their `random_quadrants`: "different orthants").

Every condition draws x from N(0, Σ) as above, whatever the task's own x distribution, and
keeps the task's w* scale and noise. Scales are Garg et al.'s (0.333, 0.5, 2, 3).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.tasks.base import Problem, TaskBatch, haar_orthogonal
from icsim.tasks.linear_regression import LinearRegression

SCALES = (0.333, 0.5, 2.0, 3.0)
#: condition name -> one line of what it changes
CONDITIONS = {
    "skewed": "x ~ N(0, Σ), Σ's eigenvalues ∝ 1/i², tr Σ = d",
    "half_subspace": "x in a fixed d/2-dimensional subspace (tr Σ = d)",
    "orthogonal": "query orthogonal to the in-context xs (k < d)",
    "overlapping": "query = one of the in-context xs, chosen uniformly",
    "orthants": "in-context xs in one random orthant, query drawn as usual",
    **{f"scale_x={s:g}": f"x scaled by {s:g}" for s in SCALES},
    **{f"scale_y={s:g}": f"y scaled by {s:g}" for s in SCALES},
}


@dataclass
class OODBatch:
    """Context prompts `batch` and, where the query is not the next point, `queries` [B, n, d]
    with labels `query_ys` [B, n]: the query after k examples is queries[:, k]. `ks`: the
    numbers of examples k the condition is defined for."""

    batch: TaskBatch
    ks: list[int]
    queries: torch.Tensor | None = None
    query_ys: torch.Tensor | None = None

    def problem(self, k: int) -> Problem:
        """The first k examples as context, the condition's query after them."""
        xs, ys = self.batch.xs, self.batch.ys
        if self.queries is None:
            return Problem(xs[:, :k], ys[:, :k], xs[:, k : k + 1], ys[:, k : k + 1])
        q, qy = self.queries[:, k : k + 1], self.query_ys[:, k : k + 1]
        return Problem(xs[:, :k], ys[:, :k], q, qy)

    def prompt(self, k: int) -> TaskBatch:
        """`problem(k)` as a prompt of k + 1 points (the query last), for a model."""
        p = self.problem(k)
        return TaskBatch(
            torch.cat([p.X, p.X_query], 1), torch.cat([p.y, p.y_query], 1), self.batch.task
        )

    def targets(self) -> torch.Tensor:
        """[B, len(ks)]: the label of every query."""
        ys = self.batch.ys if self.query_ys is None else self.query_ys
        return ys[:, self.ks]


def check_task(task) -> LinearRegression:
    """`task` if the conditions apply to it (linear regression, sparse or not), else InputError."""
    if not isinstance(task, LinearRegression):
        raise InputError(
            f"--ood (Garg et al.'s out-of-distribution prompts) applies to linear regression "
            f"runs, not to task {getattr(task, 'name', task)!r}; evaluate it without --ood."
        )
    return task


def check_condition(name: str) -> str:
    if name not in CONDITIONS:
        raise InputError(
            f"unknown out-of-distribution condition {name!r}; choose one of "
            f"{', '.join(CONDITIONS)}."
        )
    return name


def condition_seed(seed: int, name: str) -> int:
    """A seed per condition, so a condition's prompts do not depend on which others are run."""
    return (V.seed("seed", seed) * 1_000_003 + zlib.crc32(name.encode())) % 2**63


def covariance_sqrt(name: str, dim: int, generator, device, dtype) -> torch.Tensor:
    """The fixed symmetric scale matrix T of `skewed`, `half_subspace` or `scale_x=s`
    (x = Tz, Σ = T²): U diag(λ) Uᵀ with U Haar-random, normalised to tr Σ = d."""
    if name.startswith("scale_x="):
        s = float(name.split("=", 1)[1])
        return s * torch.eye(dim, device=device, dtype=dtype)
    lam = torch.zeros(dim, device=device, dtype=torch.float64)
    if name == "skewed":
        lam = 1.0 / torch.arange(1, dim + 1, device=device, dtype=torch.float64)
    elif name == "half_subspace":
        lam[: max(dim // 2, 1)] = 1.0
    else:
        raise InputError(f"condition {name!r} has no covariance of its own.")
    lam = lam * (dim / (lam**2).sum()).sqrt()
    u = haar_orthogonal(1, dim, generator, device, torch.float64)[0]
    return ((u * lam) @ u.T).to(dtype)


def sample_ood(
    task: LinearRegression,
    name: str,
    batch_size: int,
    n_points: int,
    *,
    generator: torch.Generator,
    device="cpu",
    dtype=torch.float32,
) -> OODBatch:
    """`batch_size` prompts of `n_points` points of condition `name` (see the module doc); every
    draw from `generator` (on `device`)."""
    check_task(task)
    check_condition(name)
    V.positive_int("batch_size", batch_size)
    V.positive_int("n_points", n_points)
    B, n, d = batch_size, n_points, task.dim
    kw = dict(generator=generator, device=device, dtype=dtype)
    sqrt = None
    if name in ("skewed", "half_subspace") or name.startswith("scale_x="):
        sqrt = covariance_sqrt(name, d, generator, device, dtype)
    z = torch.randn(B, n, d, **kw)
    xs = z if sqrt is None else z @ sqrt  # sqrt is symmetric: rows are T z
    if name == "orthants":  # one sign per coordinate for the whole context (Garg et al. §4)
        signs = torch.randn(B, 1, d, **kw).sign()
        xs = z.abs() * torch.where(signs == 0, torch.ones_like(signs), signs)
    w_scale = task.w_scale * (float(name.split("=", 1)[1]) if name.startswith("scale_y=") else 1)
    w = torch.randn(B, d, **kw) * w_scale

    def label(x):
        y = torch.einsum("bnd,bd->bn", x, w)
        if task.noise_std > 0:
            y = y + task.noise_std * torch.randn(y.shape, **kw)
        return y

    ys = label(xs)
    sigma = torch.eye(d, device=device, dtype=dtype) if sqrt is None else sqrt @ sqrt
    batch = TaskBatch(xs, ys, task.name, {"w_star": w, "Sigma": sigma.expand(B, d, d)})
    ks = list(range(n))
    queries = None
    if name == "orthogonal":
        queries, ks = orthogonal_queries(xs), list(range(min(n, d)))
    elif name == "overlapping":
        queries = overlapping_queries(xs, generator)
    elif name == "orthants":
        queries = z  # the query after k examples: x_k before its sign was fixed
    if queries is None:
        return OODBatch(batch, ks)
    return OODBatch(batch, ks, queries, label(queries))


def orthogonal_queries(xs: torch.Tensor) -> torch.Tensor:
    """[B, n, d]: for k < min(n, d), x_k's component orthogonal to x_0..x_{k−1}, rescaled to
    ‖x_k‖; zero beyond. Gram–Schmidt of the prompt is that component's direction: the k-th
    column of Q in xsᵀ = QR, signed by R_kk (float64 for orthogonality to round-off)."""
    B, n, d = xs.shape
    m = min(n, d)
    q, r = torch.linalg.qr(xs[:, :m].transpose(1, 2).double())  # [B, d, m]
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)
    out = torch.zeros_like(xs)
    out[:, :m] = (q.transpose(1, 2) * xs[:, :m].double().norm(dim=-1, keepdim=True)).to(xs.dtype)
    return out


def overlapping_queries(xs: torch.Tensor, generator) -> torch.Tensor:
    """[B, n, d]: after k ≥ 1 examples, one of x_0..x_{k−1} chosen uniformly; x_0 for k = 0."""
    B, n, _ = xs.shape
    u = torch.rand(B, n, generator=generator, device=xs.device, dtype=torch.float64)
    k = torch.arange(n, device=xs.device, dtype=torch.float64)
    idx = (u * k).floor().long().clamp(min=0)  # uniform on 0..k−1; 0 at k = 0
    return xs.gather(1, idx.unsqueeze(-1).expand_as(xs))
