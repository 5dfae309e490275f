"""Lloyd and soft EM against scikit-learn, step for step, on 1000 float64 problems each."""

import warnings

import numpy as np
import pytest
import torch

import icsim.algorithms as A
import icsim.tasks
from icsim.algorithms.clustering import clustering_problem
from icsim.errors import InputError


def batch(B=1000, n=20, d=2, K=3, seed=0, **params):
    task = icsim.tasks.get("gmm_clustering", dim=d, n_clusters=K, **params)
    return task.sample(B, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_lloyd_equals_sklearn_kmeans_with_the_same_start():
    from sklearn.cluster import KMeans

    b = batch(separation=(1.0, 4.0))
    steps = 4
    traj = A.get("lloyd", initialization="kmeans++", seed=3).run(b, steps)
    init = traj.iterates[0].numpy()
    # our empty-cluster rule differs from scikit-learn's: compare where no cluster empties
    counts = torch.nn.functional.one_hot(traj.predictions[:-1].clamp(min=0), 3).sum(2)
    full = (counts > 0).all(-1).all(0).numpy()
    assert full.mean() > 0.95
    X = b.xs.numpy()
    checked = 0
    for i in np.flatnonzero(full):
        km = KMeans(3, init=init[i], n_init=1, max_iter=steps, tol=0, algorithm="lloyd")
        km.fit(X[i])
        np.testing.assert_allclose(traj.iterates[-1, i].numpy(), km.cluster_centers_, atol=1e-8)
        assert np.array_equal(traj.predictions[-1, i].numpy(), km.labels_)
        checked += 1
    assert checked > 950


def test_soft_em_equals_sklearn_spherical_gaussian_mixture():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    b = batch(separation=(1.0, 4.0), weights="dirichlet", seed=1)
    steps = 4
    em = A.get(
        "soft_em", initialization="random", variance="per_component", learn_weights=True,
        min_mass=10 * np.finfo(np.float64).eps,
    )  # fmt: skip
    p = clustering_problem(b)
    s0 = em.init(p)
    traj = em.run(p, steps)
    X = b.xs.numpy()
    final = s0
    for _ in range(steps):
        final = em.step(p, final)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(b.batch_size):
            gm = GaussianMixture(
                3, covariance_type="spherical", max_iter=steps, tol=0, init_params="random",
                weights_init=s0.weights[i].numpy(), means_init=s0.centres[i].numpy(),
                precisions_init=1 / s0.variances[i].numpy(), random_state=0,
            )  # fmt: skip
            gm.fit(X[i])
            np.testing.assert_allclose(traj.iterates[-1, i].numpy(), gm.means_, atol=1e-8)
            np.testing.assert_allclose(final.variances[i].numpy(), gm.covariances_, atol=1e-8)
            np.testing.assert_allclose(final.weights[i].numpy(), gm.weights_, atol=1e-8)
            resp = gm.predict_proba(X[i])
            np.testing.assert_allclose(traj.responsibilities[-1, i].numpy(), resp, atol=1e-8)


def test_padding_is_ignored_exactly():
    """A prompt padded with masked points runs as the same prompt without them."""
    b = batch(B=50, n=16, min_points=6, seed=2)
    short = b.lengths.min().item()
    for name, params in (("lloyd", {}), ("soft_em", {"variance": "shared"})):
        alg = A.get(name, initialization="given", **params)
        c0 = b.xs[:, :3].clone()
        full = alg.run(clustering_problem(b, centres0=c0), 3)
        p = clustering_problem(b, centres0=c0)
        p = p._replace(X=b.xs[:, :short], mask=b.mask[:, :short], aug=None)
        cut = alg.run(p, 3)
        sel = b.lengths == short
        torch.testing.assert_close(full.iterates[:, sel], cut.iterates[:, sel])
        assert (full.predictions[:, ~b.mask.expand(4, -1, -1)[0]] == -1).all()


def test_lloyd_is_the_small_sigma_limit_of_known_sigma_em():
    b = batch(B=200, n=20, sigma=1.0, separation=3.0, seed=5)
    c0 = b.mu + 0.3
    lloyd = A.get("lloyd", initialization="given").run(clustering_problem(b, centres0=c0), 5)
    em = A.get("soft_em", initialization="given", sigma=1e-3)
    traj = em.run(clustering_problem(b, centres0=c0), 5)
    torch.testing.assert_close(traj.iterates, lloyd.iterates, atol=1e-9, rtol=0)
    loose = A.get("soft_em", initialization="given", sigma=1.0)
    far = loose.run(clustering_problem(b, centres0=c0), 5).iterates
    assert (far - lloyd.iterates).abs().max() > 1e-2  # at finite σ they differ


@pytest.mark.parametrize("init", ["random", "kmeans++", "perturbed_truth"])
def test_initialisations(init):
    b = batch(B=300, n=12, min_points=4, seed=6)
    alg = A.get("lloyd", initialization=init, seed=1, perturbation=0.1)
    c0 = alg.init(clustering_problem(b)).centres
    assert c0.shape == (300, 3, 2)
    if init == "perturbed_truth":
        rel = (c0 - b.mu).norm(dim=-1) / b.separation[:, None]
        assert 0.02 < rel.mean() < 0.2
        return
    # starts are distinct real points of the prompt
    d = torch.cdist(c0, b.xs).masked_fill(~b.mask[:, None], 1.0)
    assert (d.amin(-1) == 0).all()
    assert (torch.cdist(c0, c0) + torch.eye(3) > 0).all()
    assert torch.equal(c0, alg.init(clustering_problem(b)).centres)  # seeded


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("lloyd", {"initialization": "forgy"}, "initialization must be one of"),
        ("soft_em", {"variance": "full"}, "variance must be one of"),
        ("soft_em", {"sigma": 0.0}, "sigma must be > 0"),
        ("lloyd", {"seed": -1}, "seed"),
    ],
)
def test_bad_hyperparameters(name, params, match):
    with pytest.raises(InputError, match=match):
        A.get(name, **params)


def test_given_start_of_wrong_shape_and_too_few_points():
    b = batch(B=4, n=10)
    with pytest.raises(InputError, match="centres0 of shape"):
        A.get("lloyd", initialization="given").run(b, 1)
    p = clustering_problem(b)._replace(mask=torch.zeros(4, 10, dtype=torch.bool))
    with pytest.raises(InputError, match="at least K = 3"):
        A.get("lloyd").run(p, 1)


@pytest.mark.parametrize("name", ["lloyd", "soft_em"])
def test_fit_is_the_last_step_of_run(name):
    """`fit` (blocks, fixed points leaving early) gives the state of `steps` plain steps."""
    b = batch(B=70, n=16, min_points=5, seed=7)
    alg = A.get(name, **({"variance": "per_component"} if name == "soft_em" else {}))
    p = clustering_problem(b)
    state = alg.init(p)
    for _ in range(12):
        state = alg.step(p, state)
    for block in (16, 70, 1000):
        fitted = alg.fit(p, 12, block=block)
        for a, b_ in zip(fitted, state):
            assert torch.equal(a, b_)
    if name == "lloyd":  # most of these small problems reach a fixed point before 12 steps
        assert torch.equal(alg.step(p, state).centres, state.centres)
