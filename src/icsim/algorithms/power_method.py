"""Spectral solvers, batched and step by step: the power method with deflation, subspace
(orthogonal) iteration, the exact `eigh` reference, and spectral clustering by the leading
eigenvector of the Gram matrix (He, Cao, Chen, Wu, Fan, Liu 2025, arXiv 2501.01312).

A PCA problem's context X [B, N, d] gives the (uncentred) sample covariance Σ̂ = XᵀX/N, as in the
`pca` task. Iterates are the k estimated eigenvectors as columns [B, d, k]; predictions are the
eigenvalue estimates [B, k] (a Trajectory's `iterates` [T+1, B, d, k], `predictions` [T+1, B, k]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm, Trajectory
from icsim.errors import InputError
from icsim.tasks.base import Problem, TaskBatch
from icsim.tasks.pca import sign_fixed


def covariance(X: torch.Tensor) -> torch.Tensor:
    """Σ̂ = XᵀX/N per problem: [B, N, d] -> [B, d, d]."""
    return (X.transpose(1, 2) @ X).div_(X.shape[1])


def whole_context(problem: Problem | TaskBatch) -> Problem:
    """Every point is context (a spectral problem has no queries)."""
    if isinstance(problem, Problem):
        return problem
    return Problem(X=problem.xs, y=problem.ys, X_query=problem.xs[:, :0])


def normalise(v: torch.Tensor, dim: int = -2) -> torch.Tensor:
    """v/‖v‖ along `dim`; a zero vector stays zero."""
    n = v.norm(dim=dim, keepdim=True)
    return v / torch.where(n > 0, n, 1)


def start_vectors(B, d, k, start, seed, like: torch.Tensor) -> torch.Tensor:
    """Unit starting vectors [B, d, k]: `start` ([d, k] or [B, d, k]) normalised, or Gaussian ones
    drawn from `seed` on `like`'s device (the same seed gives the same vectors on that device)."""
    if start is None:
        g = torch.Generator(device=like.device).manual_seed(seed)
        start = torch.randn(B, d, k, generator=g, device=like.device, dtype=torch.float64)
    start = torch.as_tensor(start, device=like.device).to(like.dtype)
    if start.shape not in ((d, k), (B, d, k)):
        raise InputError(
            f"start must have shape [{d}, {k}] or [{B}, {d}, {k}], got {list(start.shape)}."
        )
    return normalise(start.expand(B, d, k).clone())


class PowerState(NamedTuple):
    """vectors [B, d, k] (unit columns), eigenvalues [B, k] (Rayleigh quotients), cov [B, d, d]
    (deflated by the finished vectors), step (steps done), products = cov·vectors [B, d, k] (kept
    so that a step costs one matrix-vector product, as in the construction), power: cov^p/c for
    the current power p (c > 0 a scale), or None when the algorithm does not square."""

    vectors: torch.Tensor
    eigenvalues: torch.Tensor
    cov: torch.Tensor
    step: int
    products: torch.Tensor
    power: torch.Tensor | None = None  # a normalised power of cov (the `squaring` options)


class _Spectral(Algorithm):
    family = "pca"

    def predict(self, problem, state) -> torch.Tensor:
        return state.eigenvalues

    def iterate(self, state) -> torch.Tensor:
        return state.vectors

    def default_steps(self) -> int:
        return 0

    def run(self, problem, steps: int | None = None, n_context: int | None = None) -> Trajectory:
        """Run `steps` steps (default: the algorithm's own budget) on every point of a TaskBatch."""
        steps = self.default_steps() if steps is None else steps
        return super().run(whole_context(problem), steps)


@dataclass(frozen=True)
class _Iterative(_Spectral):
    """The hyper-parameters the power method and subspace iteration share."""

    k: int = 1
    iterations: int = 20
    seed: int = 0
    start: torch.Tensor | None = field(default=None, compare=False)
    squaring: bool = False

    def __post_init__(self):
        V.positive_int("k", self.k)
        V.positive_int("iterations", self.iterations)
        V.seed("seed", self.seed)
        if not isinstance(self.squaring, bool):
            raise InputError(f"squaring must be True or False, got {self.squaring!r}.")

    def start_state(self, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ̂ [B, d, d], unit start vectors [B, d, k])."""
        B, _, d = problem.X.shape
        if self.k > d:
            raise InputError(f"k must be <= the dimension d={d}, got {self.k}.")
        cov = covariance(problem.X)
        return cov, start_vectors(B, d, self.k, self.start, self.seed, cov)


def power_of_two(name: str, value: int, why: str) -> int:
    if value & (value - 1):
        lo, hi = 1 << (value.bit_length() - 1), 1 << value.bit_length()
        raise InputError(f"{name} must be a power of 2 {why}, got {value}; use e.g. {lo} or {hi}.")
    return value


def scaled(m: torch.Tensor) -> torch.Tensor:
    """m/trace(m), in place, for positive semi-definite m [B, d, d] (even powers of a symmetric
    matrix): the largest eigenvalue lands in [1/d, 1], so powers stay finite; zero stays zero."""
    t = torch.diagonal(m, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    return m.div_(torch.where(t > 0, t, 1))


@ALGORITHMS.register("power_method")
@dataclass(frozen=True)
class PowerMethod(_Iterative):
    """The power method with Hotelling deflation for the top k eigenvectors of Σ̂ (He et al. 2025,
    §3): for j = 1..k, τ iterations v_j ← Σ_j v_j/‖Σ_j v_j‖ from a unit start, then
    λ_j = v_jᵀΣ_j v_j and Σ_{j+1} = Σ_j − λ_j v_j v_jᵀ (Σ_1 = Σ̂). Step t (1..kτ) is one iteration
    of vector j = ⌈t/τ⌉; the deflation follows that vector's τ-th iteration.

    Convergence: v_j → ±(j-th eigenvector) at the rate |λ_{j+1}/λ_j|^τ when λ_j > λ_{j+1} and the
    start is not orthogonal to it; vectors after the first inherit the error of the deflations.
    k: vectors (default 1). iterations: τ per vector (default 20). start: unit starting vectors
    [d, k] or [B, d, k], or None (default) for Gaussian ones drawn from `seed` (default 0).

    squaring (default False): the same iterates by repeated squaring, τ a power of 2. Vector j
    takes log₂τ + 1 steps: the first gives Σ_j v/‖Σ_j v‖ (iterate 1), each next one multiplies by
    P = Σ_j^(2^(t-1)) and then squares P (normalised), so step t gives iterate 2^t: in exact
    arithmetic v_j after τ = 2^s iterations in s squarings and s + 1 products, then the same
    deflation.
    """

    name = "power_method"

    def __post_init__(self):
        super().__post_init__()
        if self.squaring:
            power_of_two("iterations", self.iterations, "with squaring=True")

    def steps_per_vector(self) -> int:
        return self.iterations.bit_length() if self.squaring else self.iterations

    def default_steps(self) -> int:
        return self.k * self.steps_per_vector()

    def init(self, problem: Problem) -> PowerState:
        cov, v = self.start_state(problem)
        products = cov @ v
        power = cov if self.squaring else None
        return PowerState(v, (v * products).sum(-2), cov, 0, products, power)

    def step(self, problem: Problem, state: PowerState) -> PowerState:
        n = self.steps_per_vector()
        j, t = divmod(state.step, n)
        if j >= self.k:
            return state
        v, lam, prod = state.vectors.clone(), state.eigenvalues.clone(), state.products.clone()
        power = state.power
        if self.squaring and t > 0:  # iterate 2^(t-1) -> 2^t: multiply by Σ_j^(2^(t-1))
            vj = normalise(power @ v[..., j : j + 1], dim=-2)
            if t < n - 1:
                power = scaled(power @ power)
        else:
            vj = normalise(prod[..., j : j + 1], dim=-2)  # Σ_j v / ‖Σ_j v‖
        v[..., j : j + 1] = vj
        prod[..., j : j + 1] = state.cov @ vj
        lam[:, j] = (vj * prod[..., j : j + 1]).sum((-2, -1))  # v_jᵀΣ_j v_j
        cov = state.cov
        if t == n - 1:  # vector j is done: Σ_{j+1} = Σ_j − λ_j v_j v_jᵀ
            cov = cov - lam[:, j, None, None] * (vj @ vj.transpose(-1, -2))
            power = cov if self.squaring else None
            if j + 1 < self.k:
                prod[..., j + 1 : j + 2] = cov @ v[..., j + 1 : j + 2]
        return PowerState(v, lam, cov, state.step + 1, prod, power)


@ALGORITHMS.register("subspace_iteration")
@dataclass(frozen=True)
class SubspaceIteration(_Iterative):
    """Orthogonal (subspace) iteration: V ← qr(Σ̂^q V) with R's diagonal made positive, eigenvalue
    estimates the Rayleigh quotients diag(VᵀΣ̂V) (Golub & Van Loan, §8.2.4). Converges to the top-k
    eigenvectors at the rate |λ_{k+1}/λ_k| for the subspace and |λ_{j+1}/λ_j| for column j.

    k, start and seed as for `power_method`; iterations: τ, the power iterations in all (default
    20); a run's default budget is τ/m steps.
    every: m, power iterations per step (default 1); τ must be a multiple of m.
    qr_every: q, products per QR (default None: q = m; m must be a multiple of q). Σ̂^q V =
    Q_q R_q⋯R_1 (the product of positive-diagonal triangular factors is one), so one QR per q
    products gives the every-product QR's iterate in exact arithmetic. In floating point the k-th
    direction keeps about 16 − q·log₁₀(λ₁/λ_k) digits before the QR, so keep (λ₁/λ_k)^q well below
    1e16.
    squaring (default False): form Σ̂^q once in `init` by log₂q normalised squarings (q a power
    of 2); each QR then follows one product with it.
    ritz (default False): Rayleigh–Ritz after each step's last QR: V ← VW, W the eigenvectors of
    VᵀΣ̂V (descending; each column of VW with its largest-|·| entry positive), estimates its
    eigenvalues. The
    span is unchanged, so the subspace converges as without it, and column j then converges at
    about |λ_{k+1}/λ_j| instead of |λ_{j+1}/λ_j| (Rutishauser 1970; Parlett, The Symmetric
    Eigenvalue Problem, ch. 14): close top eigenvalues no longer slow it. The Ritz vectors depend
    on the span only, so how often it runs (once per step) changes the cost, not the estimates.
    compute_dtype (default None: the problem's dtype, all of it): "float32" runs the iteration
    (Σ̂, its powers, the products and the orthonormalisations, by Gram–Schmidt twice) in float32
    and then each step's Rayleigh–Ritz in the problem's dtype, with Σ̂ applied as Xᵀ(XV)/N and
    never formed; it needs ritz=True. The float32 stage loses the span to about
    ε₃₂·(λ₁/λ_k)^q/(1 − λ_{k+1}/λ_k) (ε₃₂ ≈ 6e-8; Σ̂^q's k-th direction sits (λ₁/λ_k)^q below its
    rounding): a q-power stage keeps ~7 − q·log₁₀(λ₁/λ_k) digits where float64 keeps ~16 − that.
    The float64 Rayleigh–Ritz recovers the rotation inside the span, so gaps among the top k cost
    nothing more; it cannot recover the span: 1 − |cos| ≤ θ²/2 with θ = 4ε₃₂(λ₁/λ_k)^q/(1 −
    λ_{k+1}/λ_k) per problem held on every test problem (tests/algorithms/
    test_power_method_mixed.py). So q = 2 reaches 1 − |cos| ~ 1e-13 where λ₁/λ_k ≤ 4, q = 4 ~1e-10
    where λ₁/λ_k ≤ 5, q = 8 ~1e-5 there (float64 q = 8: 1e-14); the Ritz values to ≤ 4e-11
    relative in the tests (all-float32 ones: ~1e-6). state.cov and state.products are the
    float32 ones; vectors and eigenvalues are in the problem's dtype (init's: the float32 start).
    """

    every: int = 1
    qr_every: int | None = None
    ritz: bool = False
    compute_dtype: str | None = None
    name = "subspace_iteration"

    def __post_init__(self):
        super().__post_init__()
        V.positive_int("every", self.every)
        if self.iterations % self.every:
            raise InputError(
                f"iterations={self.iterations} must be a multiple of every={self.every} "
                "(the power iterations per step); change either."
            )
        q = V.positive_int("qr_every", self.q)
        if self.every % q:
            raise InputError(
                f"every={self.every} must be a multiple of qr_every={q} (QRs per step a whole "
                "number); change either, or leave qr_every=None (one QR per step)."
            )
        if self.squaring:
            power_of_two("qr_every" if self.qr_every else "every", q, "with squaring=True")
        if not isinstance(self.ritz, bool):
            raise InputError(f"ritz must be True or False, got {self.ritz!r}.")
        V.choice("compute_dtype", self.compute_dtype, (None, "float32"))
        if self.compute_dtype and not self.ritz:
            raise InputError(
                f"compute_dtype={self.compute_dtype!r} needs ritz=True (the Rayleigh–Ritz in the "
                "problem's dtype is what restores its accuracy); set ritz=True or drop it."
            )

    @property
    def q(self) -> int:
        return self.every if self.qr_every is None else self.qr_every

    def default_steps(self) -> int:
        return self.iterations // self.every

    def init(self, problem: Problem) -> PowerState:
        dtype = problem.X.dtype
        if self.compute_dtype:
            problem = Problem(problem.X.to(getattr(torch, self.compute_dtype)), None, None)
        cov, v = self.start_state(problem)
        power = None
        if self.squaring:
            power = cov
            for _ in range(self.q.bit_length() - 1):
                power = scaled(power @ power)
        v = self._orthonormal(v)
        if self.compute_dtype:  # the float32 start, cast: the refinement comes with each step
            products = self._apply(cov, v)
            lam = (v * products).sum(-2).to(dtype)
            return PowerState(v.to(dtype), lam, cov, 0, products, power)
        return self._finish(v, cov, 0, power, ritz=False)

    def step(self, problem: Problem, state: PowerState) -> PowerState:
        v = state.vectors.to(state.cov.dtype)
        for i in range(self.every // self.q):
            if state.power is not None:
                w = self._apply(state.power, v)
            else:  # products = Σ̂·vectors
                w = state.products if i == 0 else self._apply(state.cov, v)
                for _ in range(self.q - 1):  # column scaling keeps the span, and w finite
                    w = self._apply(state.cov, normalise(w))
            v = self._orthonormal(w)
        if self.compute_dtype:
            return self._refine(problem.X, v, state._replace(step=state.step + 1))
        return self._finish(v, state.cov, state.step + 1, state.power, self.ritz)

    def _orthonormal(self, w: torch.Tensor) -> torch.Tensor:
        # Gram–Schmidt: ~5× cheaper than LAPACK's batched QR on [B, d, k] (the same Q)
        return gram_schmidt(w) if self.compute_dtype else orthonormal(w)

    def _apply(self, m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """m·v for symmetric m; the mixed path computes (vᵀm)ᵀ, 3× faster in torch's CPU bmm for
        k ≪ d, and keeps each vector contiguous for `gram_schmidt` (equal up to rounding)."""
        return (v.transpose(-1, -2) @ m).transpose(-1, -2) if self.compute_dtype else m @ v

    def _finish(self, v, cov, step, power, ritz) -> PowerState:
        products = cov @ v
        if not ritz:
            return PowerState(v, (v * products).sum(-2), cov, step, products, power)
        fixed, theta, w = ritz_rotation(v, v.transpose(-1, -2) @ products)
        return PowerState(fixed, theta, cov, step, products @ w, power)

    def _refine(self, X: torch.Tensor, v: torch.Tensor, state: PowerState) -> PowerState:
        """Rayleigh–Ritz in X's dtype on the span of the float32 v: Vᵀ Σ̂ V = (XV)ᵀ(XV)/N."""
        v = gram_schmidt(v.to(X.dtype))  # orthonormal to X's precision
        xv = v.transpose(-1, -2) @ X.transpose(-1, -2)  # (XV)ᵀ: faster than X @ V
        fixed, theta, _ = ritz_rotation(v, (xv @ xv.transpose(-1, -2)).div_(X.shape[1]))
        products = self._apply(state.cov, fixed.to(state.cov.dtype))
        return state._replace(vectors=fixed, eigenvalues=theta, products=products)


def ritz_rotation(v: torch.Tensor, h: torch.Tensor):
    """Ritz vectors of the orthonormal basis v [B, d, k] given h = VᵀΣV [B, k, k]: (VW sign-fixed,
    the Ritz values descending [B, k], W with the same signs), W the eigenvectors of h."""
    theta, w = torch.linalg.eigh((h + h.transpose(-1, -2)) / 2)
    w = w.flip(-1)
    vw = v @ w
    fixed = sign_fixed(vw)  # the sign from the vector, not from the basis it is written in
    sign = torch.where((fixed * vw).sum(-2, keepdim=True) < 0, -1.0, 1.0).to(vw.dtype)
    return fixed, theta.flip(-1), w * sign


def gram_schmidt(w: torch.Tensor) -> torch.Tensor:
    """The Q of `orthonormal` by classical Gram–Schmidt run twice per column (orthogonal to
    working precision, Giraud et al. 2005), batched over [B, d, k]; a zero column stays zero.
    Returned as the transpose of a contiguous [B, k, d] (each vector contiguous)."""
    cols = []
    for j in range(w.shape[-1]):
        u = w[..., j]
        for _ in range(2 if cols else 1):
            for c in cols:
                u = u - (c * u).sum(-1, keepdim=True) * c
        cols.append(normalise(u, dim=-1))
    return torch.stack(cols, -2).transpose(-1, -2)


def orthonormal(v: torch.Tensor) -> torch.Tensor:
    """Q of v = QR with R's diagonal made non-negative (a unique, sign-stable basis)."""
    q, r = torch.linalg.qr(v)
    sign = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    return q * torch.where(sign == 0, 1, sign).unsqueeze(-2)


@ALGORITHMS.register("eigh")
@dataclass(frozen=True)
class Eigh(_Spectral):
    """The exact top-k eigenpairs of Σ̂ by `torch.linalg.eigh` (in float64), sign-fixed as the
    `pca` task's targets: the reference every iterative solver converges to."""

    k: int = 1
    name = "eigh"
    closed_form = True

    def __post_init__(self):
        V.positive_int("k", self.k)

    def init(self, problem: Problem) -> PowerState:
        from icsim.tasks.pca import top_eigenpairs

        if self.k > problem.X.shape[-1]:
            raise InputError(f"k must be <= the dimension d={problem.X.shape[-1]}, got {self.k}.")
        cov = covariance(problem.X)
        lam, vec = top_eigenpairs(cov, self.k)
        return PowerState(vec, lam, cov, 0, vec * lam[:, None])


class GramState(NamedTuple):
    """v [B, N]: the leading-eigenvector estimate of the Gram matrix G = XXᵀ [B, N, N]."""

    v: torch.Tensor
    gram: torch.Tensor


@ALGORITHMS.register("spectral_clustering")
@dataclass(frozen=True)
class SpectralClusteringPower(Algorithm):
    """Two-class spectral clustering (He et al. 2025, §clustering): labels sign(v), v the leading
    eigenvector of the Gram matrix G = XXᵀ, here by power iterations v ← Gv/‖Gv‖ from a Gaussian
    start drawn from `seed` (`iterations`: the default budget, 30). For x_i = y_iμ + z_i,
    G ≈ ‖μ‖² yyᵀ + noise, so sign(v) recovers y up to a global sign once ‖μ‖ is large enough.
    Iterates: v [T+1, B, N]; predictions: the labels ±1 [T+1, B, N] (a zero entry gets +1)."""

    iterations: int = 30
    seed: int = 0
    family = "spectral_clustering"
    name = "spectral_clustering"

    def __post_init__(self):
        V.positive_int("iterations", self.iterations)
        V.seed("seed", self.seed)

    def init(self, problem: Problem) -> GramState:
        X = problem.X
        gram = X @ X.transpose(1, 2)
        g = torch.Generator(device=X.device).manual_seed(self.seed)
        v = torch.randn(X.shape[0], X.shape[1], generator=g, device=X.device, dtype=torch.float64)
        return GramState(normalise(v.to(X.dtype), dim=-1), gram)

    def step(self, problem: Problem, state: GramState) -> GramState:
        v = torch.einsum("bij,bj->bi", state.gram, state.v)
        return GramState(normalise(v, dim=-1), state.gram)

    def predict(self, problem: Problem, state: GramState) -> torch.Tensor:
        return torch.where(state.v < 0, -1.0, 1.0).to(state.v.dtype)

    def iterate(self, state: GramState) -> torch.Tensor:
        return state.v

    def run(self, problem, steps: int | None = None, n_context: int | None = None) -> Trajectory:
        steps = self.iterations if steps is None else steps
        return super().run(whole_context(problem), steps)
