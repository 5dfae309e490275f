"""Clustering metrics against scikit-learn / SciPy on random labelings, incl. edge cases."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from icsim.analysis import clustering_metrics as M


def labelings(B=250, n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 4, (B, n), generator=g)
    p = torch.randint(0, 5, (B, n), generator=g)
    p[:50] = t[:50]  # perfect
    p[50:100] = (t[50:100] + 1) % 4  # perfect up to a permutation
    p[100:150] = 0  # one predicted cluster
    t[120:150] = 2  # ... and one true class
    p[150:200] = torch.arange(n)  # all singletons
    return t, p


def test_ari_and_nmi_equal_sklearn():
    t, p = labelings()
    ari, nmi = M.adjusted_rand_index(t, p), M.normalized_mutual_info(t, p)
    ref_ari = [adjusted_rand_score(a, b) for a, b in zip(t.numpy(), p.numpy())]
    ref_nmi = [normalized_mutual_info_score(a, b) for a, b in zip(t.numpy(), p.numpy())]
    np.testing.assert_allclose(ari.numpy(), ref_ari, atol=1e-12)
    np.testing.assert_allclose(nmi.numpy(), ref_nmi, atol=1e-12)
    assert (ari[:100] == 1).all() and (nmi[:100] > 1 - 1e-12).all()


def test_mask_equals_dropping_the_points():
    t, p = labelings(B=100)
    mask = torch.zeros_like(t, dtype=torch.bool)
    mask[:, :6] = True
    for f in (M.adjusted_rand_index, M.normalized_mutual_info):
        torch.testing.assert_close(f(t, p, mask), f(t[:, :6], p[:, :6]))
    torch.testing.assert_close(
        M.adjusted_rand_index(t, p, mask), M.adjusted_rand_index(torch.where(mask, t, -1), p)
    )


@pytest.mark.parametrize("K", [3, 8])
def test_misclustering_is_the_hungarian_optimum(K):
    g = torch.Generator().manual_seed(K)
    t = torch.randint(0, K, (200, 30), generator=g)
    p = torch.where(
        torch.rand(200, 30, generator=g) < 0.7,
        (t * 3 + 1) % K,
        torch.randint(0, K, (200, 30), generator=g),
    )
    C = M.contingency(t, p, None, K, K).numpy()
    ref = [1 - c[linear_sum_assignment(-c)].sum() / 30 for c in C]
    np.testing.assert_allclose(M.misclustering_rate(t, p, K).numpy(), ref, atol=1e-12)
    relabelled = M.matched_labels(t, p, K)
    np.testing.assert_allclose((relabelled != t).double().mean(1).numpy(), ref, atol=1e-12)


def test_soft_cross_entropy_minimises_over_permutations():
    g = torch.Generator().manual_seed(1)
    logp = torch.randn(50, 12, 3, generator=g, dtype=torch.float64).log_softmax(-1)
    t = torch.randint(0, 3, (50, 12), generator=g)
    import itertools

    ref = torch.stack([
        -logp[..., list(q)].gather(2, t[..., None])[..., 0].mean(1)
        for q in itertools.permutations(range(3))
    ]).amin(0)  # fmt: skip
    torch.testing.assert_close(M.soft_cross_entropy(logp, t), ref)


def test_minimax_rate():
    assert M.minimax_rate(4.0, 1.0) == pytest.approx(np.exp(-2.0))
    torch.testing.assert_close(
        M.minimax_rate(torch.tensor([2.0, 4.0]), 2.0),
        torch.exp(-torch.tensor([0.125, 0.5])).double(),
    )
