"""The constructions against float64 NumPy recurrences written here (independent of
icsim.algorithms), and what their hidden states hold along the way."""

import numpy as np
import pytest
import torch

import icsim
from icsim.constructions.newton import MatrixTokens, NewtonRegressionTokens
from icsim.errors import InputError
from icsim.tasks.base import TaskBatch

B, D, N_CTX, M = 300, 4, 9, 3  # problems, dimension, context examples, queries


def _prompts(condition_number=100.0, seed=0, unit_norm=False):
    task = icsim.tasks.get("linear_regression", dim=D, condition_number=condition_number)
    g = torch.Generator().manual_seed(seed)
    batch = task.sample(B, N_CTX + M, generator=g, dtype=torch.float64)
    if unit_norm:  # ‖X_context‖₂ = 1 so that ε = 1 converges
        s = np.linalg.norm(batch.xs[:, :N_CTX].numpy(), ord=2, axis=(1, 2))
        s = torch.from_numpy(s)
        batch = TaskBatch(batch.xs / s[:, None, None], batch.ys / s[:, None], batch.task)
    return batch


def _per_layer(model, fmt, batch):
    """Query predictions read out of every hidden state: [L+1, B, m]."""
    with torch.no_grad():
        _, hidden = fmt.run(model, batch, return_hidden=True)
        return torch.stack([fmt.decode(model.head(h), batch.n_points) for h in hidden]).numpy()


def _assert_rel(actual, expected, tol=1e-10):
    err = np.linalg.norm(actual - expected, axis=-1)
    scale = np.linalg.norm(expected, axis=-1)
    rel = np.where(scale > 0, err / np.where(scale > 0, scale, 1), err)
    assert rel.max() <= tol, rel.max()


def test_gd_layers_are_gd_steps_numpy():
    eta, T = 0.4, 4
    model, fmt = icsim.constructions.build("gd", dim=D, steps=T, step_size=eta, n_queries=M)
    batch = _prompts()
    X, y = batch.xs[:, :N_CTX].numpy(), batch.ys[:, :N_CTX].numpy()
    Xq = batch.xs[:, N_CTX:].numpy()
    w = np.zeros((B, D))
    expected = [np.einsum("bmd,bd->bm", Xq, w)]
    for _ in range(T):
        grad = np.einsum("bnd,bn->bd", X, np.einsum("bnd,bd->bn", X, w) - y) / N_CTX
        w = w - eta * grad
        expected.append(np.einsum("bmd,bd->bm", Xq, w))
    _assert_rel(_per_layer(model, fmt, batch), np.stack(expected))

    # von Oswald's convention: a context token's y-slot holds the residual y_i − w_Tᵀx_i.
    with torch.no_grad():
        _, hidden = fmt.run(model, batch, return_hidden=True)
    residual = y - np.einsum("bnd,bd->bn", X, w)
    np.testing.assert_allclose(hidden[-1, :, :N_CTX, D].numpy(), residual, rtol=1e-9, atol=1e-12)
    # the inputs are never changed
    np.testing.assert_array_equal(hidden[-1, ..., :D].numpy(), batch.xs.numpy())


def test_gd_plus_plus_layers_transform_tokens_numpy():
    """Token-space GD++: residuals and inputs updated from the same layer input."""
    eta, gamma, T = 0.3, 0.25, 4
    model, fmt = icsim.constructions.build(
        "gd_plus_plus", dim=D, steps=T, step_size=eta, gamma=gamma, n_queries=M
    )
    batch = _prompts()
    X, y = batch.xs[:, :N_CTX].numpy().copy(), batch.ys[:, :N_CTX].numpy().copy()
    Xq, rq = batch.xs[:, N_CTX:].numpy().copy(), np.zeros((B, M))
    expected = [-rq]
    for _ in range(T):
        K = np.einsum("bnd,bmd->bnm", X, X)  # x_iᵀx_j, context
        Kq = np.einsum("bqd,bnd->bqn", Xq, X)
        Sigma = np.einsum("bnd,bne->bde", X, X) / N_CTX
        y, rq = (
            y - eta / N_CTX * np.einsum("bnm,bm->bn", K, y),
            rq - eta / N_CTX * np.einsum("bqn,bn->bq", Kq, y),
        )
        X, Xq = X - gamma * X @ Sigma, Xq - gamma * Xq @ Sigma
        expected.append(-rq)
    _assert_rel(_per_layer(model, fmt, batch), np.stack(expected))
    with torch.no_grad():
        _, hidden = fmt.run(model, batch, return_hidden=True)
    final = hidden[-1].numpy()
    np.testing.assert_allclose(final[:, :N_CTX, :D], X, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(final[:, N_CTX:, :D], Xq, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
def test_newton_schulz_layers_numpy(symmetric):
    T = 4
    model, fmt = icsim.constructions.build("newton_schulz", dim=D, steps=T, symmetric=symmetric)
    rng = np.random.default_rng(0)
    G = rng.standard_normal((B, D, D))
    if symmetric:
        A = G @ G.transpose(0, 2, 1) + 0.1 * np.eye(D)
    else:
        A = G
    X0 = A.transpose(0, 2, 1) / np.linalg.norm(A, ord=2, axis=(1, 2))[:, None, None] ** 2
    with torch.no_grad():
        _, hidden = fmt.run(model, torch.from_numpy(A), torch.from_numpy(X0), return_hidden=True)
        per_layer = torch.stack([model.head(h) for h in hidden]).numpy()  # [L+1, B, d, d]
    Xs = [X0]
    for _ in range(T):
        Xs.append(Xs[-1] @ (2 * np.eye(D) - A @ Xs[-1]))
    per_step = 1 if symmetric else 2
    for t, X in enumerate(Xs):
        _assert_rel(per_layer[t * per_step].reshape(B, -1), X.reshape(B, -1))
    if not symmetric:  # the middle of step t still shows X_{t−1} and holds P = A X_{t−1}
        L = fmt.layout
        for t in range(1, T + 1):
            _assert_rel(per_layer[2 * t - 1].reshape(B, -1), Xs[t - 1].reshape(B, -1))
            P = hidden[2 * t - 1][..., L.P].numpy()
            _assert_rel(P.reshape(B, -1), (A @ Xs[t - 1]).reshape(B, -1))
    # A and the one-hot coordinates are left as they were.
    np.testing.assert_array_equal(hidden[-1][..., :D].numpy(), A)


def test_iterative_newton_regression_numpy():
    eps, T = 1.0, 5
    model, fmt = icsim.constructions.build(
        "iterative_newton_regression", dim=D, steps=T, epsilon=eps, n_queries=M
    )
    batch = _prompts(unit_norm=True)
    X, y = batch.xs[:, :N_CTX].numpy(), batch.ys[:, :N_CTX].numpy()
    Xq = batch.xs[:, N_CTX:].numpy()
    S = X.transpose(0, 2, 1) @ X  # AᵀA, no 1/n
    b = np.einsum("bnd,bn->bd", X, y)
    Ms = [eps * S]
    for _ in range(T):
        Ms.append(2 * Ms[-1] - Ms[-1] @ S @ Ms[-1])
    expected = np.stack([np.einsum("bmd,bde,be->bm", Xq, Mk, b) for Mk in Ms])
    per_layer = _per_layer(model, fmt, batch)
    _assert_rel(per_layer[2:], expected)  # ŷ_k after layer k + 2
    np.testing.assert_array_equal(per_layer[:2], 0.0)  # nothing predicted before that
    # After T steps at ε = 1 on ‖A‖₂ = 1 data with κ = 1, the prediction is least squares'.
    batch1 = _prompts(condition_number=1.0, unit_norm=True)
    model20, fmt20 = icsim.constructions.build(
        "iterative_newton_regression", dim=D, steps=20, n_queries=M
    )
    X1, y1, Xq1 = (t.numpy() for t in (batch1.xs[:, :N_CTX], batch1.ys[:, :N_CTX],
                                       batch1.xs[:, N_CTX:]))  # fmt: skip
    w_ls = np.linalg.lstsq(X1[0], y1[0], rcond=None)[0]
    with torch.no_grad():
        pred = fmt20.run(model20, batch1)[0].numpy()
    np.testing.assert_allclose(pred, Xq1[0] @ w_ls, rtol=1e-8)

    # Matrix tokens hold S and M_k; a token's y-slot holds (Aᵀy)_j.
    with torch.no_grad():
        _, hidden = fmt.run(model, batch, return_hidden=True)
    L, c = fmt.layout, N_CTX
    mt = hidden[:, :, c : c + D].numpy()  # [L+1, B, d, width]
    np.testing.assert_allclose(mt[1][..., L.S], S, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mt[1][..., L.y][..., 0], b, rtol=1e-12, atol=1e-14)
    for k in range(T + 1):
        _assert_rel(mt[k + 1][..., L.M].reshape(B, -1), Ms[k].reshape(B, -1))


def test_queries_do_not_see_one_another():
    for name in ("gd", "gd_plus_plus", "iterative_newton_regression"):
        model, fmt = icsim.constructions.build(name, dim=D, steps=3, n_queries=M)
        batch = _prompts(unit_norm=True)
        base = _per_layer(model, fmt, batch)
        xs = batch.xs.clone()
        xs[:, N_CTX + 1] += 1.0  # move the second query
        moved = _per_layer(model, fmt, TaskBatch(xs, batch.ys, batch.task))
        np.testing.assert_array_equal(moved[..., [0, 2]], base[..., [0, 2]])
        assert np.abs(moved[-1, :, 1] - base[-1, :, 1]).min() > 0


def test_matrix_and_regression_formats():
    fmt = MatrixTokens(3)
    A = torch.randn(2, 3, 3, dtype=torch.float64)
    tokens = fmt.encode(A, A.transpose(1, 2))
    assert tokens.shape == (2, 3, 12)
    L = fmt.layout
    assert torch.equal(tokens[..., L.e], torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    with pytest.raises(InputError, match="must both have shape"):
        fmt.encode(A, A[:, :2])
    with pytest.raises(InputError, match="symmetric=True needs a symmetric A"):
        MatrixTokens(3, symmetric=True).encode(A + torch.eye(3) * 0 + _asym(), A)

    reg = NewtonRegressionTokens(2, n_queries=2)
    assert reg.width == 4 * 2 + 3
    mask = reg.mask(5).int()  # 3 context, 2 matrix tokens, 2 queries
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 1, 0],
            [0, 0, 0, 1, 1, 0, 1],
        ]
    )
    assert torch.equal(mask, expected)
    assert reg.positions(5).tolist() == [5, 6]
    with pytest.raises(InputError, match="leaves no context"):
        reg.mask(2)
    batch = _prompts()
    with pytest.raises(InputError, match="dimension 4 but the format expects dim=2"):
        reg.encode(batch)


def _asym():
    E = torch.zeros(3, 3, dtype=torch.float64)
    E[0, 1] = 1.0
    return E
