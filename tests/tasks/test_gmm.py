"""The gmm_clustering task: centres at exact separation Δ, labels, masks, options, bad input."""

import pytest
import torch

import icsim.tasks
from icsim.errors import InputError
from icsim.tasks.gmm import pairwise_distances


def sample(B=64, n=30, seed=0, **params):
    task = icsim.tasks.get("gmm_clustering", **params)
    return task.sample(B, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_points_are_centres_plus_sigma_noise_and_separation_is_exact():
    b = sample(B=8, n=4000, dim=3, n_clusters=4, sigma=0.5, separation=(2.0, 6.0))
    assert b.xs.shape == (8, 4000, 3) and b.mu.shape == (8, 4, 3) and b.z.shape == (8, 4000)
    assert torch.equal(b.ys, b.z.double())
    D = pairwise_distances(b.mu).flatten(1).amin(1)
    torch.testing.assert_close(D, b.separation)
    assert ((b.separation >= 2.0) & (b.separation <= 6.0)).all()
    resid = b.xs - torch.gather(b.mu, 1, b.z[..., None].expand(-1, -1, 3))
    torch.testing.assert_close(
        resid.std(dim=(1, 2)), torch.full((8,), 0.5).double(), atol=0.02, rtol=0
    )
    freq = torch.nn.functional.one_hot(b.z, 4).double().mean(1)
    torch.testing.assert_close(freq, torch.full((8, 4), 0.25).double(), atol=0.04, rtol=0)


def test_variable_lengths_mask_and_pad():
    b = sample(dim=2, n_clusters=3, min_points=5)
    assert b.lengths.min() >= 5 and b.lengths.max() <= 30 and len(b.lengths.unique()) > 5
    assert torch.equal(b.mask, torch.arange(30)[None] < b.lengths[:, None])
    assert (b.xs[~b.mask] == 0).all() and (b.z[~b.mask] == -1).all() and (b.z[b.mask] >= 0).all()


def test_tgmm_recipe_weights_and_anisotropic_covariances():
    b = sample(B=200, dim=2, n_clusters=3, centres="tgmm", weights="tgmm")
    assert (b.mu.abs() <= 5).all()
    unit = b.mu / b.mu.norm(dim=-1, keepdim=True)
    cos = unit @ unit.transpose(1, 2) - 2 * torch.eye(3)
    assert (cos < 0.8).all()
    assert (b.weights[:, 1:] >= b.weights[:, :-1]).all()  # sorted
    assert (b.weights.max(1).values / b.weights.min(1).values <= 4 + 1e-9).all()
    b = sample(B=4, n=8000, dim=3, n_clusters=2, covariance="anisotropic", condition_number=9.0)
    eig = torch.linalg.eigvalsh(b.Sigma)
    torch.testing.assert_close(eig[..., -1] / eig[..., 0], torch.full((4, 2), 9.0).double())
    sel = b.z[0] == 0
    r = b.xs[0, sel] - b.mu[0, 0]
    torch.testing.assert_close(r.T @ r / sel.sum(), b.Sigma[0, 0], atol=0.08, rtol=0)
    d = sample(B=500, n=3, dim=2, weights="dirichlet", dirichlet_alpha=0.3).weights
    torch.testing.assert_close(d.sum(1), torch.ones(500).double())
    assert d.max(1).values.mean() > 0.6  # sparse Dirichlet draws


def test_same_seed_same_batch():
    assert torch.equal(sample(seed=4).xs, sample(seed=4).xs)


@pytest.mark.parametrize(
    "params,n,match",
    [
        ({"n_clusters": 1}, 10, "n_clusters must be an integer >= 2"),
        ({"sigma": 0.0}, 10, "sigma must be > 0"),
        ({"sigma": -1.0}, 10, "sigma must be > 0"),
        ({"n_clusters": 5}, 4, "n_points must be at least n_clusters = 5"),
        ({"centres": "grid"}, 10, "centres must be one of"),
        ({"separation": (3.0, 1.0)}, 10, "low <= high"),
        ({"min_points": 20}, 10, "min_points must lie in"),
    ],
)
def test_bad_input_is_one_clear_error(params, n, match):
    with pytest.raises(InputError, match=match):
        sample(n=n, **params)


def test_labelled_prompts_draw_k_classes_per_prompt():
    from icsim.analysis.clustering_metrics import adjusted_rand_index
    from icsim.tasks.gmm import bundled_dataset, labelled_prompts

    X, y = bundled_dataset("iris")
    b = labelled_prompts(X, y, 20, 30, 2, 5, generator=torch.Generator().manual_seed(0))
    assert b.xs.shape == (20, 30, 5) and (b.xs[..., 4] == 0).all()  # 4 features, padded
    assert set(b.z.unique().tolist()) <= {0, 1} and b.mu.shape == (20, 2, 5)
    # z are the classes: nearest class mean recovers most of them
    near = torch.cdist(b.xs, b.mu).argmin(-1)
    assert adjusted_rand_index(b.z, near).mean() > 0.5
    with pytest.raises(InputError, match="exceeds"):
        labelled_prompts(X, y, 2, 10, 4, 2, generator=torch.Generator())
