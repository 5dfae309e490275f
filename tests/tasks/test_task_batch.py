import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import icsim.tasks
from icsim.errors import InputError


def _batch(**kw):
    task = icsim.tasks.get("linear_regression", dim=3, **kw)
    return task.sample(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_split_prefix_to_and_truth_attributes():
    b = _batch()
    p = b.split(4)
    assert p.X.shape == (4, 4, 3) and p.X_query.shape == (4, 2, 3)
    assert torch.equal(p.y_query, b.ys[:, 4:])
    p0 = b.split(0)
    assert p0.X.shape == (4, 0, 3) and p0.X_query.shape == (4, 6, 3)
    assert b.prefix(2).xs.shape == (4, 2, 3)
    b32 = b.to(dtype=torch.float32)
    assert b32.xs.dtype == b32.w_star.dtype == b32.Sigma.dtype == torch.float32
    assert torch.equal(b.w_star, b.truth["w_star"])
    with pytest.raises(AttributeError, match="no 'beta'"):
        b.beta  # noqa: B018
    for bad in (6, -1):
        with pytest.raises(InputError, match=f"n_context.*{bad}"):
            b.split(bad)


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(1, 6),
    n_points=st.integers(1, 8),
    batch=st.integers(1, 4),
    kappa=st.floats(1.0, 1000.0),
    noise=st.floats(0.0, 2.0),
    uniform=st.booleans(),
    sparse=st.booleans(),
    double=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampler_properties(dim, n_points, batch, kappa, noise, uniform, sparse, double, seed):
    params = {"dim": dim, "noise_std": noise}
    if uniform:
        params["x_distribution"] = "uniform"
    elif dim > 1:  # one dimension has no spread of eigenvalues to condition
        params["condition_number"] = kappa
    if sparse:
        params["sparsity"] = max(1, dim // 2)
    dtype = torch.float64 if double else torch.float32
    task = icsim.tasks.get("linear_regression", **params)

    def draw():
        return task.sample(
            batch, n_points, generator=torch.Generator().manual_seed(seed), dtype=dtype
        )

    b, again = draw(), draw()
    assert b.xs.shape == (batch, n_points, dim) and b.ys.shape == (batch, n_points)
    assert b.w_star.shape == (batch, dim) and b.Sigma.shape == (batch, dim, dim)
    for name in ("xs", "ys", "w_star", "Sigma"):
        t = getattr(b, name)
        assert t.dtype == dtype and torch.isfinite(t).all()
        assert torch.equal(t, getattr(again, name))
    if sparse:
        assert ((b.w_star != 0).sum(1) <= max(1, dim // 2)).all()
    if noise == 0:
        expected = torch.einsum("bnd,bd->bn", b.xs, b.w_star)
        torch.testing.assert_close(b.ys, expected)
