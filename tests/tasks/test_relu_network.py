"""relu_network_regression: the network, the mixture inputs, the scaling, reproducibility."""

import numpy as np
import pytest
import torch

import icsim.tasks
from icsim.errors import InputError
from icsim.tasks.relu_network import NetworkShape, network_forward, sample_network_weights


def _np_network(w, x, dim, depth, width):
    """Independent NumPy forward pass for one problem: w flat [D_w], x [n, d] -> [n]."""
    widths = [dim] + [width] * (depth - 1) + [1]
    p, off = x, 0
    for j in range(depth):
        o, i = widths[j + 1], widths[j]
        W = w[off : off + o * i].reshape(o, i)
        off += o * i
        p = p @ W.T
        if j < depth - 1:
            p = np.maximum(p, 0)
    assert off == len(w)
    return p[:, 0]


def _sample(B=6, n=10, seed=0, **kw):
    task = icsim.tasks.get("relu_network_regression", **kw)
    return task.sample(B, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_targets_are_the_network_of_the_truth(depth):
    b = _sample(dim=4, depth=depth, width=5)
    shape = NetworkShape(4, depth, 5)
    assert b.w_star.shape == (6, shape.n_params)
    assert shape.n_params == {1: 4, 2: 20 + 5, 3: 20 + 25 + 5, 6: 20 + 4 * 25 + 5}[depth]
    for i in range(6):
        ref = _np_network(b.w_star[i].numpy(), b.xs[i].numpy(), 4, depth, 5)
        np.testing.assert_allclose(b.ys[i].numpy(), ref, rtol=1e-12, atol=1e-12)


def test_flatten_roundtrip_and_layout():
    shape = NetworkShape(3, 3, 4)
    w = torch.randn(2, shape.n_params, dtype=torch.float64)
    mats = shape.unflatten(w)
    assert [tuple(m.shape[1:]) for m in mats] == [(4, 3), (4, 4), (1, 4)]
    assert torch.equal(shape.flatten(mats), w)
    assert mats[0][1, 2, 1] == w[1, 2 * 3 + 1]  # row-major W_1, then W_2, then W_3
    assert mats[1][0, 3, 0] == w[0, 12 + 3 * 4]
    assert mats[2][1, 0, 2] == w[1, 12 + 16 + 2]
    with pytest.raises(InputError, match="entries"):
        shape.unflatten(w[:, :-1])


def test_mixture_components_and_shift():
    b = _sample(B=20, n=50, dim=5, depth=2, width=4)  # default (1, 0): all from N(−2·1, I)
    assert not b.component.any()
    assert abs(b.xs.mean().item() + 2) < 0.1
    b = _sample(B=20, n=50, dim=5, depth=2, width=4, mixture=(0, 1))
    assert b.component.all() and abs(b.xs.mean().item() - 2) < 0.1
    b = _sample(B=40, n=50, dim=5, depth=2, width=4, mixture=(1, 1))
    frac = b.component.double().mean().item()
    assert 0.45 < frac < 0.55
    # each point sits around its own component's mean
    means = b.xs.mean(-1)
    assert ((means > 0) == b.component).double().mean() > 0.98


def test_he_scaling_keeps_outputs_of_order_one_and_paper_scaling_does_not():
    he = _sample(B=200, n=20, dim=20, depth=6, width=20)
    assert 0.5 < he.ys.std().item() < 5  # E y² ≈ E‖x‖²/d = 5
    paper = _sample(B=50, n=20, dim=20, depth=3, width=20, fan_in_scaling=False)
    assert paper.ys.std().item() > 40  # N(0, I) weights: (K/2)^{(N−1)/2}·E‖x‖ ≈ 100


def test_weights_have_the_documented_variance():
    shape = NetworkShape(10, 3, 50)
    w = sample_network_weights(shape, 200, generator=torch.Generator().manual_seed(0))
    W1, W2, W3 = shape.unflatten(w)
    assert abs(W1.var().item() - 2 / 10) < 0.01
    assert abs(W2.var().item() - 2 / 50) < 0.002
    assert abs(W3.var().item() - 1 / 50) < 0.002


def test_reproducible_noise_and_active_dims():
    a = _sample(seed=3, dim=4, depth=3, width=3, noise_std=0.5)
    b = _sample(seed=3, dim=4, depth=3, width=3, noise_std=0.5)
    assert torch.equal(a.xs, b.xs) and torch.equal(a.ys, b.ys)
    clean = network_forward(NetworkShape(4, 3, 3), a.w_star, a.xs)
    resid = (a.ys - clean).std().item()
    assert 0.35 < resid < 0.65
    task = icsim.tasks.get("relu_network_regression", dim=4, depth=2, width=3)
    c = task.sample(2, 5, active_dims=2)
    assert (c.xs[..., 2:] == 0).all() and (c.xs[..., :2] != 0).all()


@pytest.mark.parametrize(
    "kw",
    [
        dict(mixture=(-1, 1)),
        dict(mixture=(0, 0)),
        dict(mixture=(1,)),
        dict(mixture="ab"),
        dict(depth=0),
        dict(width=-2),
        dict(weight_scale=-1.0),
        dict(noise_std=-0.1),
        dict(fan_in_scaling="yes"),
        dict(depht=3),
    ],
)
def test_bad_input(kw):
    with pytest.raises(InputError):
        icsim.tasks.get("relu_network_regression", **kw)
