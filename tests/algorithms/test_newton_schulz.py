import numpy as np
import pytest
import torch

from icsim.algorithms.newton_schulz import newton_schulz, newton_schulz_step
from icsim.errors import InputError


def _matrices(seed, batch=4, d=6, symmetric=False):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((batch, d, d))
    if symmetric:  # SPD with condition number <= 10
        Q, _ = np.linalg.qr(G)
        lam = np.geomspace(1, 10, d)
        return (Q * lam) @ Q.transpose(0, 2, 1)
    return G + 3 * np.sqrt(d) * np.eye(d)  # non-symmetric, well conditioned


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("order", [2, 3])
def test_converges_to_inverse(order, symmetric):
    A = _matrices(1, symmetric=symmetric)
    assert np.linalg.cond(A).max() < 20
    X0 = A.transpose(0, 2, 1) / np.linalg.norm(A, ord=2, axis=(1, 2))[:, None, None] ** 2
    its = newton_schulz(torch.from_numpy(A), torch.from_numpy(X0), steps=12, order=order)
    assert its.shape == (13, *A.shape)
    inv = np.linalg.inv(A)
    err = [np.abs(its[k].numpy() - inv).max() / np.abs(inv).max() for k in range(13)]
    assert err[-1] < 1e-12
    assert err[0] > 1e-2  # it did have work to do


@pytest.mark.parametrize("order", [2, 3, 4])
def test_error_recursion(order):
    """E = I − AX obeys E_{k+1} = E_k^p, whatever X_0 (here a random, non-convergent one)."""
    rng = np.random.default_rng(order)
    d = 5
    A = rng.standard_normal((3, d, d))
    X = 0.1 * rng.standard_normal((3, d, d))
    its = newton_schulz(torch.from_numpy(A), torch.from_numpy(X), steps=3, order=order)
    for k in range(3):
        E = np.eye(d) - A @ its[k].numpy()
        E_next = np.eye(d) - A @ its[k + 1].numpy()
        expected = np.linalg.matrix_power(E, order)
        np.testing.assert_allclose(E_next, expected, atol=1e-10 * max(1, np.abs(expected).max()))


def test_order2_is_x_times_2i_minus_ax():
    rng = np.random.default_rng(3)
    A, X = rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 4, 4))
    out = newton_schulz_step(torch.from_numpy(A), torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, X @ (2 * np.eye(4) - A @ X), rtol=1e-12, atol=1e-12)


def test_batched_over_leading_dims_and_list_output():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((2, 3, 4, 4)) + 4 * np.eye(4)
    X0 = 0.05 * A.swapaxes(-1, -2)
    its = newton_schulz(torch.from_numpy(A), torch.from_numpy(X0), steps=3, order=3)
    for i in range(2):
        for j in range(3):
            one = newton_schulz(torch.from_numpy(A[i, j]), torch.from_numpy(X0[i, j]), 3, order=3)
            torch.testing.assert_close(its[:, i, j], one, rtol=1e-12, atol=1e-12)
    as_list = newton_schulz(torch.from_numpy(A), torch.from_numpy(X0), 3, stack=False)
    assert isinstance(as_list, list) and len(as_list) == 4


def test_bad_input():
    A = torch.eye(3)
    with pytest.raises(InputError, match="order"):
        newton_schulz_step(A, A, order=1)
    with pytest.raises(InputError, match="order"):
        newton_schulz_step(A, A, order=0)
    with pytest.raises(InputError, match="inner dimensions"):
        newton_schulz_step(A, torch.eye(4))
    with pytest.raises(InputError, match="steps"):
        newton_schulz(A, A, steps=-1)
