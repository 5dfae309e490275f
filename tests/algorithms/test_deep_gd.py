"""relu_network_gd and relu_network_trained against per-problem torch.autograd / torch.optim
references in float64, the projections against NumPy."""

import numpy as np
import pytest
import torch

import icsim.algorithms
import icsim.tasks
from icsim.algorithms.deep_gd import loss_gradient, project, training_loss
from icsim.errors import InputError
from icsim.tasks.relu_network import NetworkShape, network_forward


def _problem(B=4, n=10, d=3, depth=3, width=4, m=3, seed=0, kappa=None):
    task = icsim.tasks.get("relu_network_regression", dim=d, depth=depth, width=width)
    b = task.sample(B, n + m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if kappa is not None:  # ill-conditioned inputs: scales from 1 down to 1/κ across coordinates
        b.xs.mul_(torch.logspace(0, -np.log10(kappa), d, dtype=torch.float64))
        b.ys.copy_(network_forward(NetworkShape(d, depth, width), b.w_star, b.xs))
    return b.split(n)


def _autograd_gd(w0, X, y, dims, eta, steps, radius=None, norm="linf"):
    """Reference: GD on ONE problem with torch.autograd on a list of weight matrices."""
    widths = list(dims)
    mats, off = [], 0
    for j in range(len(widths) - 1):
        o, i = widths[j + 1], widths[j]
        mats.append(w0[off : off + o * i].reshape(o, i).clone())
        off += o * i
    out = [torch.cat([m.flatten() for m in mats])]
    for _ in range(steps):
        params = [m.clone().requires_grad_(True) for m in mats]
        h = X
        for j, W in enumerate(params):
            h = h @ W.T
            if j < len(params) - 1:
                h = torch.relu(h)
        loss = 0.5 * ((h[:, 0] - y) ** 2).mean()
        grads = torch.autograd.grad(loss, params)
        mats = [(W - eta * g).detach() for W, g in zip(params, grads)]
        flat = torch.cat([m.flatten() for m in mats])
        if radius is not None:
            if norm == "linf":
                flat = torch.clamp(flat, -radius, radius)
            else:
                flat = flat * min(1.0, radius / flat.norm().item())
        off, new = 0, []
        for m in mats:
            new.append(flat[off : off + m.numel()].reshape(m.shape))
            off += m.numel()
        mats = new
        out.append(flat)
    return torch.stack(out)


@pytest.mark.parametrize(
    "depth,radius,norm,kappa",
    [
        (1, None, "linf", None),
        (2, None, "linf", None),
        (3, None, "linf", 1e3),
        (4, 0.6, "linf", None),
        (3, 1.5, "l2", None),
    ],
)
def test_gd_equals_per_problem_autograd(depth, radius, norm, kappa):
    p = _problem(depth=depth, kappa=kappa)
    alg = icsim.algorithms.get(
        "relu_network_gd", depth=depth, width=4, step_size=0.05, radius=radius, norm=norm
    )
    traj = alg.run(p, steps=6)
    shape = alg.shape(p)
    for b in range(p.X.shape[0]):
        ref = _autograd_gd(traj.iterates[0, b], p.X[b], p.y[b], shape.widths, 0.05, 6, radius, norm)
        err = (traj.iterates[:, b] - ref).norm(dim=-1) / ref.norm(dim=-1)
        assert err.max() <= 1e-10, err
        Xq = p.X_query[b].expand(7, -1, -1)
        preds = network_forward(shape, traj.iterates[:, b], Xq)
        assert torch.allclose(traj.predictions[:, b], preds, rtol=0, atol=1e-12)
    assert not torch.equal(traj.iterates[0], traj.iterates[-1])  # it moved


def test_gd_decreases_the_training_loss_and_fits():
    p = _problem(B=6, n=30, d=3, depth=2, width=8)
    alg = icsim.algorithms.get("relu_network_gd", depth=2, width=8, step_size=0.05)
    traj = alg.run(p, steps=300)
    shape = alg.shape(p)
    first = training_loss(shape, traj.iterates[0], p.X, p.y)
    last = training_loss(shape, traj.iterates[-1], p.X, p.y)
    assert (last < 0.2 * first).all()


def test_depth_one_is_linear_gradient_descent():
    p = _problem(depth=1, width=1)
    a = icsim.algorithms.get("relu_network_gd", depth=1, width=1, step_size=0.03).run(p, 5)
    ref = icsim.algorithms.get("gradient_descent", step_size=0.03, w0=a.iterates[0]).run(p, 5)
    assert torch.allclose(a.iterates, ref.iterates, rtol=1e-12, atol=1e-14)
    assert torch.allclose(a.predictions, ref.predictions, rtol=1e-12, atol=1e-13)


class _SurrogateReLU(torch.autograd.Function):
    """ReLU forward, a ramp derivative backward (what the construction's r′ layer computes)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return torch.relu(z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * torch.clamp(z / 0.5, 0, 1)


def test_gradient_with_a_replaced_derivative_matches_autograd():
    p = _problem(depth=3, width=4)
    shape = NetworkShape(3, 3, 4)
    w = torch.randn(
        4, shape.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    g = loss_gradient(shape, w, p.X, p.y, lambda z: torch.clamp(z / 0.5, 0, 1))
    for b in range(4):
        wb = w[b].clone().requires_grad_(True)
        W1, W2, W3 = shape.unflatten(wb)
        h = _SurrogateReLU.apply(p.X[b] @ W1.T)
        h = _SurrogateReLU.apply(h @ W2.T)
        loss = 0.5 * (((h @ W3.T)[:, 0] - p.y[b]) ** 2).mean()
        (ref,) = torch.autograd.grad(loss, wb)
        assert torch.allclose(g[b], ref, rtol=1e-11, atol=1e-13)
    alg = icsim.algorithms.get(
        "relu_network_gd", depth=3, width=4, step_size=0.1, derivative_ramp=0.5, w0=w
    )
    assert torch.allclose(alg.step(p, alg.init(p)), w - 0.1 * g, rtol=1e-14, atol=1e-15)


def test_projections_match_numpy():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(50, 7)) * rng.uniform(0.1, 3, size=(50, 1))
    t = torch.from_numpy(w)
    np.testing.assert_array_equal(project(t, 0.8, "linf").numpy(), np.clip(w, -0.8, 0.8))
    nrm = np.linalg.norm(w, axis=1, keepdims=True)
    ref = np.where(nrm > 2.0, w * 2.0 / nrm, w)
    out = project(t, 2.0, "l2").numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-14)
    assert (np.linalg.norm(out, axis=1) <= 2.0 + 1e-12).all()
    np.testing.assert_allclose(project(project(t, 2.0, "l2"), 2.0, "l2").numpy(), out)
    assert project(t, None) is t
    # the projection is the closest point of the ball: no random point of the ball is closer
    cand = rng.normal(size=(2000, 7))
    cand *= (2.0 * rng.uniform(size=(2000, 1)) ** (1 / 7)) / np.linalg.norm(cand, axis=1)[:, None]
    for i in range(5):
        d_proj = np.linalg.norm(w[i] - out[i])
        assert d_proj <= np.linalg.norm(w[i] - cand, axis=1).min() + 1e-12


def test_init_is_seeded_and_w0_is_used():
    p = _problem()
    a = icsim.algorithms.get("relu_network_gd", depth=3, width=4)
    b = icsim.algorithms.get("relu_network_gd", depth=3, width=4, seed=1)
    assert torch.equal(a.init(p), a.init(p)) and not torch.equal(a.init(p), b.init(p))
    w0 = torch.ones(a.shape(p).n_params, dtype=torch.float64)
    c = icsim.algorithms.get("relu_network_gd", depth=3, width=4, w0=w0)
    assert torch.equal(c.init(p), w0.expand(4, -1))
    with pytest.raises(InputError, match="w0"):
        icsim.algorithms.get("relu_network_gd", depth=3, width=4, w0=w0[:-1]).init(p)


@pytest.mark.parametrize(
    "kw",
    [
        dict(step_size=0),
        dict(radius=-1.0),
        dict(norm="l1"),
        dict(depth=0),
        dict(seed=-1),
        dict(derivative_ramp=0.0),
    ],
)
def test_gd_bad_input(kw):
    with pytest.raises(InputError):
        icsim.algorithms.get("relu_network_gd", **kw)


def test_trained_adam_equals_torch_optim_adam_per_problem():
    p = _problem(B=3, n=8, depth=3, width=4)
    alg = icsim.algorithms.get("relu_network_trained", depth=3, width=5, lr=0.02, epochs=7)
    w = alg.fit(p)
    w0 = alg.init(p)[0]
    shape = alg.shape(p)
    for b in range(3):
        param = w0[b].clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=0.02)
        for _ in range(7):
            opt.zero_grad()
            loss = training_loss(shape, param[None], p.X[b : b + 1], p.y[b : b + 1]).sum()
            loss.backward()
            opt.step()
        assert torch.allclose(w[b], param.detach(), rtol=1e-10, atol=1e-12)


def _numpy_adam_fit(w0, X, y, widths, lr, epochs, b1=0.9, b2=0.999, eps=1e-8):
    """Reference: full-batch Adam on ONE problem in float64 NumPy, backpropagation by hand."""
    shapes = [(widths[j + 1], widths[j]) for j in range(len(widths) - 1)]
    cuts = np.cumsum([0] + [o * i for o, i in shapes])
    w = np.array(w0, dtype=np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, epochs + 1):
        mats = [w[cuts[j] : cuts[j + 1]].reshape(s) for j, s in enumerate(shapes)]
        ps, zs = [X], []
        for j, W in enumerate(mats):
            zs.append(ps[-1] @ W.T)
            if j < len(mats) - 1:
                ps.append(np.maximum(zs[-1], 0))
        delta = (zs[-1][:, 0] - y)[:, None] / len(y)
        grads = [None] * len(mats)
        for j in reversed(range(len(mats))):
            grads[j] = delta.T @ ps[j]
            if j > 0:
                delta = (delta @ mats[j]) * (zs[j - 1] > 0)
        g = np.concatenate([gj.ravel() for gj in grads])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("depth,kappa", [(1, None), (3, None), (4, 1e3)])
def test_trained_fit_equals_numpy_adam(depth, kappa, fused, monkeypatch):
    """`fit` (matrices updated in place by the fused kernel, or by its foreach fallback) against
    a float64 NumPy Adam, and against `run`'s last epoch (the pure `step` path)."""
    if not fused:
        monkeypatch.setattr("icsim.algorithms.deep_gd._fused_devices", lambda: [])
    p = _problem(B=3, n=9, d=3, depth=depth, width=4, kappa=kappa, seed=depth)
    alg = icsim.algorithms.get("relu_network_trained", depth=depth, width=6, lr=0.03, epochs=12)
    w = alg.fit(p)
    shape = alg.shape(p)
    w0 = alg.init(p)[0]
    for b in range(3):
        ref = _numpy_adam_fit(w0[b].numpy(), p.X[b].numpy(), p.y[b].numpy(), shape.widths, 0.03, 12)
        np.testing.assert_allclose(w[b].numpy(), ref, rtol=1e-9, atol=1e-11)
    assert not torch.allclose(w, w0)  # it moved
    traj = alg.run(p)
    fitted = network_forward(shape, w, p.X_query)
    assert torch.allclose(traj.predictions[-1], fitted, rtol=1e-12, atol=1e-12)


def test_trained_baseline_reaches_a_low_training_loss():
    p = _problem(B=2, n=16, d=4, depth=3, width=4, seed=2)
    alg = icsim.algorithms.get("relu_network_trained", depth=3)  # width 200, 100 epochs, Adam
    traj = alg.run(p)
    assert traj.steps == 100 and traj.iterates.shape == (101, 2)
    assert (2 * traj.iterates[-1] < 0.05 * p.y.var(dim=1)).all(), traj.iterates[-1]  # R² > 0.95
    assert (traj.iterates[-1] < 0.05 * traj.iterates[0]).all()


def test_trained_minibatches_are_reproducible():
    p = _problem(B=2, n=10, depth=2, width=3)
    alg = icsim.algorithms.get("relu_network_trained", depth=2, width=6, batch_size=3, epochs=4)
    a, b = alg.run(p), alg.run(p)
    assert torch.equal(a.iterates, b.iterates) and torch.equal(a.predictions, b.predictions)
    full = icsim.algorithms.get("relu_network_trained", depth=2, width=6, epochs=4).run(p)
    assert not torch.equal(a.iterates, full.iterates)


@pytest.mark.parametrize(
    "kw", [dict(epochs=0), dict(lr=0), dict(batch_size=0), dict(betas=(0.9, 1.0)), dict(betas=(1,))]
)
def test_trained_bad_input(kw):
    with pytest.raises(InputError):
        icsim.algorithms.get("relu_network_trained", **kw)
