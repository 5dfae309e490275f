"""Newton–Schulz matrix inversion and iterative Newton for linear regression by linear attention
(Giannou, Yang, Wang, Papailiopoulos, Lee 2025, Lemma 4.1 and Theorem 4.2).

A d×d matrix lives in d tokens, token i holding row i, together with the one-hot e_i. Linear
attention over these tokens multiplies matrices: with q_j = row j of P, k_i = e_i and
v_i = row i of Q, token j receives Σ_i P_{ji} Q_{i,:} = row j of PQ; with q = k = e it copies
its own row (the identity). One Newton–Schulz step X ← 2X − XAX is therefore two matrix
products (two layers) for a general A and one when A is symmetric, because then the score
q_jᵀk_i = x_jᵀa_i = (XA)_{ji} needs no transpose.
"""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.constructions.base import (
    CONSTRUCTIONS,
    Check,
    ConstructionInfo,
    RegressionCheck,
    empty_model,
    finish,
    head_weights,
    in_dtype,
    info_of,
    put,
    rows,
)
from icsim.errors import InputError
from icsim.models.construction_formats import MatrixTokens, NewtonRegressionTokens
from icsim.tasks.base import haar_orthogonal

GIANNOU = "Giannou et al. 2025, How Well Can Transformers Emulate In-Context Newton's Method?"


# -- Newton–Schulz (Lemma 4.1) -------------------------------------------------------------------
class NewtonSchulzCheck(Check):
    """A = U diag(s) Vᵀ with U, V Haar and singular values s geometric from 1 down to 1/κ
    (U = V, a positive definite A, when symmetric); X₀ = Aᵀ/‖A‖_F², inside the region
    ‖I − AX₀‖ < 1 where Newton–Schulz converges, and not yet the inverse even when κ = 1."""

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, condition_number=1.0):
        V.number("condition_number", condition_number, low=1)
        d, f64 = info.dim, torch.float64
        s = torch.as_tensor(float(condition_number), dtype=f64) ** -torch.linspace(0, 1, d).to(f64)
        U = haar_orthogonal(n_problems, d, generator, "cpu", f64)
        Vt = U if fmt.symmetric else haar_orthogonal(n_problems, d, generator, "cpu", f64)
        A = (U * s) @ Vt.transpose(1, 2)
        if fmt.symmetric:
            A = (A + A.transpose(1, 2)) / 2  # exactly symmetric in floating point
        return A, A.transpose(1, 2) / (s**2).sum()

    def reference(self, info, problems):
        from icsim.algorithms.newton_schulz import newton_schulz as ns

        A, X0 = problems
        return ns(A, X0, info.steps, order=2)

    def model_steps(self, model, fmt, problems, dtype):
        A, X0 = (t.to(dtype) for t in problems)
        model = in_dtype(model, dtype)
        with torch.no_grad():
            _, hidden = fmt.run(model, A, X0, return_hidden=True)
            return torch.stack(
                [fmt.decode(model.head(hidden[b])) for b in info_of(model).step_blocks]
            )


@CONSTRUCTIONS.register("newton_schulz", check=NewtonSchulzCheck)
def newton_schulz(dim: int = 5, steps: int = 1, symmetric: bool = False):
    """T Newton–Schulz steps X_{t+1} = X_t(2I − AX_t) on tokens holding A and X₀
    (Giannou et al. 2025, Lemma 4.1).

    General A: layers = 2T, heads = 2, width = 4d, head dim = d. Step t is two layers:
      layer 2t−1: P ← AX_{t−1} (head 1: q = a, k = e, v = x; head 2 removes the previous step's
                  P: q = k = e, v = −p), so P = AX_{t−1} whatever it held;
      layer 2t:   X ← X + X − X·P (head 1: q = x, k = e, v = p, projection −1; head 2: q = k = e,
                  v = x).
    Symmetric A (`symmetric=True`): layers = T, heads = 1, width = 3d, head dim = 2d; one head
      q = [−x; e], k = [a; e], v = x gives Σ_i (δ_ji − (XA)_{ji}) x_i = row j of X − XAX.
    Reference: `icsim.algorithms.newton_schulz.newton_schulz_step(A, X)` (order 2). The read-out
    of token i is row i of X, so every hidden state shows the current iterate (the middle of a
    general step still shows X_{t−1}).
    """
    d = V.positive_int("dim", dim)
    T = V.positive_int("steps", steps)
    if not isinstance(symmetric, bool):
        raise InputError(f"symmetric must be True or False, got {symmetric!r}.")
    fmt = MatrixTokens(d, symmetric)
    L = fmt.layout
    if symmetric:
        layers, heads, head_dim, per_step = T, 1, 2 * d, 1
    else:
        layers, heads, head_dim, per_step = 2 * T, 2, d, 2
    model = empty_model(width=L.width, layers=layers, heads=heads, head_dim=head_dim, n_out=d)
    for i, block in enumerate(model.blocks):
        q, k, v, o = head_weights(block)
        if symmetric:
            put(q[0], rows(0, d), L.X, -1.0)
            put(q[0], rows(d, d), L.e)
            put(k[0], rows(0, d), L.A)
            put(k[0], rows(d, d), L.e)
            put(v[0], rows(0, d), L.X)
            put(o[:, 0], L.X, rows(0, d))
        elif i % 2 == 0:  # P ← A X
            put(q[0], rows(0, d), L.A)
            put(k[0], rows(0, d), L.e)
            put(v[0], rows(0, d), L.X)
            put(o[:, 0], L.P, rows(0, d))
            put(q[1], rows(0, d), L.e)
            put(k[1], rows(0, d), L.e)
            put(v[1], rows(0, d), L.P)
            put(o[:, 1], L.P, rows(0, d), -1.0)
        else:  # X ← 2X − X P
            put(q[0], rows(0, d), L.X)
            put(k[0], rows(0, d), L.e)
            put(v[0], rows(0, d), L.P)
            put(o[:, 0], L.X, rows(0, d), -1.0)
            put(q[1], rows(0, d), L.e)
            put(k[1], rows(0, d), L.e)
            put(v[1], rows(0, d), L.X)
            put(o[:, 1], L.X, rows(0, d))
    put(model.read_out.weight.data, rows(0, d), L.X)
    info = ConstructionInfo(
        name="newton_schulz",
        citation=GIANNOU + ", Lemma 4.1",
        algorithm="newton_schulz",
        hyperparameters={"order": 2, "symmetric": symmetric},
        steps=T,
        dim=d,
        layers=layers,
        heads=heads,
        width=L.width,
        head_dim=head_dim,
        layers_per_step=per_step,
        formulas=(
            {"layers": "T", "heads": "1", "width": "3d", "head_dim": "2d"}
            if symmetric
            else {"layers": "2T", "heads": "2", "width": "4d", "head_dim": "d"}
        ),
    )
    return finish(model, info), fmt


# -- Iterative Newton for linear regression (Theorem 4.2) ----------------------------------------
class NewtonRegressionCheck(RegressionCheck):
    unit_spectral_norm = True  # so that ε = 1 is inside the convergence region


@CONSTRUCTIONS.register("iterative_newton_regression", check=NewtonRegressionCheck)
def iterative_newton_regression(
    dim: int = 5, steps: int = 1, epsilon: float = 1.0, n_queries: int = 1
):
    """T iterative-Newton steps for linear regression, ŷ_T = a_testᵀ M_T Aᵀy with
    M_0 = εAᵀA, M_{k+1} = 2M_k − M_k AᵀA M_k (Giannou et al. 2025, Thm 4.2).

    Size: layers = T + 2, heads = 2, width = 4d + 3, head dim = 2d (the paper: 3 + T layers).
      layer 1: matrix token j gets Σ_i (a_i)_j [a_i; y_i]: row j of S = AᵀA into S, εS into M
               and (Aᵀy)_j into its y-slot (one head: q = e, k = x, v = [x; y]);
      layers 2..T+1: Newton step k: M ← M + M − MSM in one head (q = [−M; e], k = [S; e], v = M:
               Lemma 4.1's one-layer case, S being symmetric), and beside it
      layers 2..T+2: the read-out head q = [x; q], k = [M; ŷ], v = y − q: a query receives
               Σ_j (a_testᵀ m_j)(Aᵀy)_j − ŷ_old, i.e. its ŷ becomes a_testᵀ M Aᵀy for the M the
               layer reads (M_{l−2} at layer l).
    So ŷ_k is readable after layer k + 2 (block_offset 2): one layer fewer than the paper because
    the read-out of M_{k−1} runs beside step k. Convention: S = AᵀA without 1/n (no attention
    normalisation), so the reference is algorithms `iterative_newton(alpha=ε)`; it converges
    when ε < 2/λ_max(S)², e.g. ε = 1 for prompts scaled to ‖A‖₂ <= 1 (as `verify` draws them).
    """
    d = V.positive_int("dim", dim)
    T = V.positive_int("steps", steps)
    eps = V.number("epsilon", epsilon, low=0, low_open=True)
    fmt = NewtonRegressionTokens(d, n_queries)
    L = fmt.layout
    model = empty_model(width=L.width, layers=T + 2, heads=2, head_dim=2 * d)
    for layer, block in enumerate(model.blocks, start=1):
        q, k, v, o = head_weights(block)
        if layer == 1:  # S = AᵀA, M_0 = εS, Aᵀy onto the matrix tokens
            put(q[0], rows(0, d), L.e)
            put(k[0], rows(0, d), L.x)
            put(v[0], rows(0, d), L.x)
            put(v[0], rows(d, 1), L.y)
            put(o[:, 0], L.S, rows(0, d))
            put(o[:, 0], L.M, rows(0, d), eps)
            put(o[:, 0], L.y, rows(d, 1))
            continue
        if layer <= T + 1:  # Newton step: M ← 2M − MSM
            put(q[0], rows(0, d), L.M, -1.0)
            put(q[0], rows(d, d), L.e)
            put(k[0], rows(0, d), L.S)
            put(k[0], rows(d, d), L.e)
            put(v[0], rows(0, d), L.M)
            put(o[:, 0], L.M, rows(0, d))
        # read-out: ŷ ← a_testᵀ M (Aᵀy), replacing the previous ŷ
        put(q[1], rows(0, d), L.x)
        put(q[1], rows(d, 1), L.q)
        put(k[1], rows(0, d), L.M)
        put(k[1], rows(d, 1), L.pred)
        put(v[1], rows(0, 1), L.y)
        put(v[1], rows(0, 1), L.q, -1.0)
        put(o[:, 1], L.pred, rows(0, 1))
    put(model.read_out.weight.data, rows(0, 1), L.pred)
    info = ConstructionInfo(
        name="iterative_newton_regression",
        citation=GIANNOU + ", Theorem 4.2",
        algorithm="iterative_newton",
        hyperparameters={"alpha": eps},
        steps=T,
        dim=d,
        layers=T + 2,
        heads=2,
        width=4 * d + 3,
        head_dim=2 * d,
        layers_per_step=1,
        block_offset=2,
        formulas={"layers": "T + 2", "heads": "2", "width": "4d + 3", "head_dim": "2d"},
    )
    return finish(model, info), fmt
