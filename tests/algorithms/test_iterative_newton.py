import numpy as np
import pytest
import torch

import icsim.algorithms as A
from icsim.errors import InputError

from ._problems import as_np, problems, rel_err


def min_norm_solution(X, y):
    return np.stack([np.linalg.pinv(X[b].T @ X[b]) @ X[b].T @ y[b] for b in range(len(X))])


def states(alg, p, steps):
    state = alg.init(p)
    out = [state]
    for _ in range(steps):
        state = alg.step(p, state)
        out.append(state)
    return out


def test_matches_numpy_recurrence():
    """ŵ_k from an independent NumPy loop: M_0 = S/‖SSᵀ‖_F, M ← 2M − MSM, ŵ = M Xᵀy."""
    p = problems(n=20, kappa=100.0, noise=0.1, seed=1)
    X, y = as_np(p.X), as_np(p.y)
    traj = A.get("iterative_newton").run(p, steps=12)
    for b in range(len(X)):
        S = X[b].T @ X[b]
        M = S / np.linalg.norm(S @ S.T, "fro")
        for k in range(13):
            np.testing.assert_allclose(
                as_np(traj.iterates[k, b]), M @ X[b].T @ y[b], rtol=1e-9, atol=1e-12
            )
            M = 2 * M - M @ S @ M


@pytest.mark.parametrize("kappa", [1.0, 100.0])
@pytest.mark.parametrize("n", [30, 5])  # d = 8: full rank and rank-deficient (minimum norm)
def test_converges_to_min_norm_least_squares(n, kappa):
    p = problems(n=n, kappa=kappa, noise=0.1, seed=2)
    wls = min_norm_solution(as_np(p.X), as_np(p.y))
    traj = A.get("iterative_newton").run(p, steps=40)
    errs = np.array([rel_err(as_np(w), wls) for w in traj.iterates])  # [41, B]
    assert errs[0].min() > 1e-2  # it starts far away ...
    assert errs[-1].max() < 1e-9  # ... and arrives


@pytest.mark.parametrize("kappa", [1.0, 100.0])
def test_quadratic_rate(kappa):
    p = problems(n=30, kappa=kappa, seed=3)
    wls = min_norm_solution(as_np(p.X), as_np(p.y))
    alg = A.get("iterative_newton")
    sts = states(alg, p, 40)
    errs = np.array([rel_err(as_np(s[0]), wls) for s in sts])  # [41, B]
    # the matrix error E_k = I − M_k S squares every step: ‖E_{k+1}‖₂ = ‖E_k‖₂²
    S = as_np(sts[0][2])
    E = [np.eye(8) - as_np(s[1]) @ S for s in sts[:12]]
    for k in range(11):
        np.testing.assert_allclose(E[k + 1], E[k] @ E[k], atol=1e-9)
        norms = np.linalg.norm(E[k], ord=2, axis=(1, 2)), np.linalg.norm(E[k + 1], 2, axis=(1, 2))
        np.testing.assert_allclose(norms[1], norms[0] ** 2, rtol=1e-6, atol=1e-12)
    # in the fast phase (error < 1e-2, above round-off) err_{k+1} <= C err_k², and from 1e-2
    # to 1e-10 takes at most 4 steps (GD's linear rate would need hundreds at κ = 100)
    now, nxt = errs[:-1], errs[1:]
    fast = (now < 1e-2) & (nxt > 1e-11)
    assert fast.sum() >= len(wls)  # at least one fast-phase pair per problem on average
    assert np.all(nxt[fast] <= 100 * now[fast] ** 2)
    first_small = np.argmax(errs < 1e-2, axis=0)
    first_tiny = np.argmax(errs < 1e-10, axis=0)
    assert np.all(errs[-1] < 1e-10) and np.all(first_tiny - first_small <= 4)


def test_spectral_alpha_leaves_the_top_eigendirection_stuck():
    """PAPERS.md §1: with α = 2/‖SSᵀ‖₂, E_0 = I − αS² has eigenvalue −1 on S's top
    eigenvector v, then 1 forever: ŵ_k's component along v stays 0 ≠ vᵀŵ_ls (k ≥ 1),
    while every other direction converges. (The stuck value is an unstable fixed point: rounding
    errors double every step, so in float64 it holds for about 30 steps, not forever.)"""
    p = problems(n=30, seed=4)
    X, y = as_np(p.X), as_np(p.y)
    wls = min_norm_solution(X, y)
    alg = A.get("iterative_newton", alpha="spectral")
    sts = states(alg, p, 25)
    S = as_np(sts[0][2])
    lam, V = np.linalg.eigh(S)
    v = V[:, :, -1]  # top eigenvector per problem, [B, d]
    alpha = 2 / lam[:, -1] ** 2
    np.testing.assert_allclose(as_np(sts[0][1]), alpha[:, None, None] * S, rtol=1e-12)
    top_ls = np.einsum("bd,bd->b", v, wls)
    assert np.all(np.abs(top_ls) > 1e-3)  # the stuck component is not trivially zero
    for k, s in enumerate(sts):
        w, M = as_np(s[0]), as_np(s[1])
        e_top = 1 - np.einsum("bi,bij,bjk,bk->b", v, M, S, v)  # vᵀ E_k v
        np.testing.assert_allclose(e_top, -1.0 if k == 0 else 1.0, atol=1e-6)
        if k >= 1:
            np.testing.assert_allclose(np.einsum("bd,bd->b", v, w), 0, atol=1e-6)
    err = as_np(sts[-1][0]) - wls
    off_top = err - np.einsum("bd,b->bd", v, np.einsum("bd,bd->b", v, err))
    assert np.abs(off_top).max() < 1e-8 * np.abs(wls).max()  # the rest converged
    np.testing.assert_allclose(np.einsum("bd,bd->b", v, err), -top_ls, rtol=1e-6)
    # the default α = 1/‖SSᵀ‖_F is strictly inside the region and converges on the same problems
    w_default = A.get("iterative_newton").run(p, steps=30).iterates[-1]
    assert rel_err(as_np(w_default), wls).max() < 1e-10


def test_float_alpha_is_a_fixed_scale():
    p = problems(n=10, seed=5)
    alg = A.get("iterative_newton", alpha=0.003)
    _, M, S, _ = alg.init(p)
    torch.testing.assert_close(M, 0.003 * S)


@pytest.mark.parametrize("alpha", ["frobenius", "spectral", 0.1])
def test_no_context_predicts_zero(alpha):
    p = problems(n=0, m=3)
    traj = A.get("iterative_newton", alpha=alpha).run(p, steps=3)
    assert torch.equal(traj.predictions, torch.zeros_like(traj.predictions))


def test_zero_inputs_in_one_problem_do_not_poison_the_batch():
    p = problems(n=10, seed=6)
    p.X[0] = 0.0
    traj = A.get("iterative_newton").run(p, steps=40)
    assert torch.isfinite(traj.iterates).all()
    assert torch.equal(traj.predictions[:, 0], torch.zeros_like(traj.predictions[:, 0]))
    wls = min_norm_solution(as_np(p.X[1:]), as_np(p.y[1:]))
    assert rel_err(as_np(traj.iterates[-1, 1:]), wls).max() < 1e-9


@pytest.mark.parametrize("bad", ["newton", 0, -1.0, float("inf")])
def test_bad_alpha(bad):
    with pytest.raises(InputError, match="alpha"):
        A.get("iterative_newton", alpha=bad)


def _square_problem(singular_values, seed):
    """y = Xw* + noise with X = U diag(s) Vᵀ (Haar U, V): a square sample matrix of chosen
    conditioning."""
    rng = np.random.default_rng(seed)
    B, d = singular_values.shape
    U = np.linalg.qr(rng.standard_normal((B, d, d)))[0]
    V = np.linalg.qr(rng.standard_normal((B, d, d)))[0]
    X = (U * singular_values[:, None, :]) @ V.transpose(0, 2, 1)
    y = np.einsum("bnd,bd->bn", X, rng.standard_normal((B, d))) + 0.1 * rng.standard_normal((B, d))
    return X, y


def _lstsq(X, y):
    return np.stack([np.linalg.lstsq(X[b], y[b], rcond=None)[0] for b in range(len(X))])


def test_reaches_least_squares_on_square_badly_conditioned_prompts():
    """Issue 23 item 6: n = d = 20, κ = 100, 100 steps: ŵ within 1e-8 of float64 least squares on
    every problem (M(2I − SM) with ŵ = M Xᵀy stalled at 1.8e-7 here)."""
    import icsim.tasks

    task = icsim.tasks.get("linear_regression", dim=20, condition_number=100)
    batch = task.sample(16, 21, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    X, y = as_np(batch.xs[:, :20]), as_np(batch.ys[:, :20])
    assert np.linalg.cond(np.einsum("bnd,bne->bde", X, X)).max() > 1e6  # badly conditioned
    traj = A.get("iterative_newton").run(batch, steps=100, n_context=20)
    assert rel_err(as_np(traj.iterates[-1]), _lstsq(X, y)).max() < 1e-8


def test_reaches_least_squares_at_cond_2e8():
    """cond(S) = 2e8 exactly (cond(X) = √2e8): the estimate still reaches 1e-10 (the old form:
    ~1e-2)."""
    s = np.geomspace(1.0, 1 / np.sqrt(2e8), 20)[None].repeat(16, 0)
    X, y = _square_problem(s, seed=5)
    from icsim.tasks.base import Problem

    p = Problem(X=torch.from_numpy(X), y=torch.from_numpy(y), X_query=torch.from_numpy(X[:, :1]))
    traj = A.get("iterative_newton").run(p, steps=100)
    assert rel_err(as_np(traj.iterates[-1]), _lstsq(X, y)).max() < 1e-10
