"""Thompson sampling's carried root: one rank-1 step of `root_update` equals the upper-triangular
root of the updated inverse computed from scratch by SciPy (random and ill-conditioned A)."""

import numpy as np
import pytest
import scipy.linalg as sla
import torch

from icsim.environments.policies import batch_last, root_update


@pytest.mark.parametrize("cond", [1.0, 1e8])
def test_root_update_matches_a_fresh_factor(cond):
    rng = np.random.default_rng(0)
    B, d = 5, 4
    Rs, As, a = [], [], rng.standard_normal((B, d))
    for _ in range(B):
        Qm, _ = np.linalg.qr(rng.standard_normal((d, d)))
        A = Qm @ np.diag(np.geomspace(1, cond, d)) @ Qm.T
        As.append(A)
        # upper R with R Rᵀ = A⁻¹: R = L⁻ᵀ for A = L Lᵀ
        Rs.append(sla.solve_triangular(np.linalg.cholesky(A), np.eye(d), lower=True).T)
    R, g, c = root_update(batch_last(torch.tensor(np.array(Rs))), batch_last(torch.tensor(a)))
    for b in range(B):
        A2 = As[b] + np.outer(a[b], a[b])
        want = sla.solve_triangular(np.linalg.cholesky(A2), np.eye(d), lower=True).T
        scale = np.abs(want).max()
        np.testing.assert_allclose(R[:, :, b].numpy(), want, atol=1e-9 * scale * cond**0.5)
        gb = np.linalg.solve(As[b], a[b])
        np.testing.assert_allclose(g[:, b].numpy(), gb, rtol=1e-6, atol=1e-12 * np.abs(gb).max())
        np.testing.assert_allclose(c[0, b].item(), 1 / (1 + a[b] @ gb), rtol=1e-8)
        assert np.allclose(np.tril(R[:, :, b].numpy(), -1), 0)
