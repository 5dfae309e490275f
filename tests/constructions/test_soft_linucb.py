"""soft_linucb: the unrolled soft LinUCB construction against the policy's log-probabilities,
within its stated bound; the bound is tight enough to catch a broken √ unit; the error falls
with width (√ interpolant) and with solver steps (depth)."""

import copy

import pytest
import torch

from icsim.constructions import verify as V
from icsim.constructions.soft_linucb import error_table, soft_linucb
from icsim.errors import InputError

SMALL = {"steps": 8, "dim": 3, "n_problems": 20, "n_actions": 4}


def test_verifies_within_its_stated_bound():
    r = V.verify("soft_linucb", **SMALL)
    assert r.passed, r.summary()
    assert r.max_error < 1e-3 < r.bound < 0.2, (r.max_error, r.bound)  # measured ~5e-5, 3e-2
    assert len(r.per_step) == 9 and "stated bound" in r.criterion


def test_a_broken_sqrt_unit_fails_the_bound():
    model, fmt = soft_linucb(dim=3, steps=8, n_actions=4)
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.sqrt_mlp[2].weight[0, 3] += 0.5  # one ReLU unit of √ off
    r = V.verify_model(broken, fmt, n_problems=20, condition_numbers=(1,))
    assert not r.passed, r.summary()


def test_error_falls_with_width_and_with_solver_steps():
    t = error_table(widths=(16, 32, 64), solver_steps=(8, 32, 128), n_problems=10, dim=3,
                    steps=6, n_actions=4)  # fmt: skip
    w, k = list(t["width"].values()), list(t["solver_steps"].values())
    assert w[0] > 2 * w[1] > 4 * w[2], w  # O(1/W) stated; measured ~×4 per doubling
    assert k[0] > 10 * k[1] > 100 * k[2], k  # geometric in k


@pytest.mark.parametrize("params", [{"dim": 6}, {"n_actions": 11}, {"steps": 51},
                                    {"n_actions": 1}, {"temperature": 0}])  # fmt: skip
def test_out_of_range_is_one_input_error(params):
    with pytest.raises(InputError):
        soft_linucb(**params)


def test_model_matches_a_numpy_soft_linucb_on_one_history():
    """Independent of the policy code: A = I + XᵀX, np.linalg.solve, softmax(s/τ) in NumPy."""
    import numpy as np

    from icsim.constructions.soft_linucb import _histories

    model, _ = soft_linucb(dim=3, steps=8, n_actions=4, width=1024)
    (f, X, r), _ = _histories(model.construction, 3, torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(f, X, r).numpy()
    for i in range(f.shape[0]):
        Fi, Xi, ri = (x[i].numpy() for x in (f, X, r))
        A = np.eye(3) + Xi.T @ Xi
        s = Fi @ np.linalg.solve(A, Xi.T @ ri) + 2.0 * np.sqrt(
            np.einsum("kd,kd->k", Fi, np.linalg.solve(A, Fi.T).T))  # fmt: skip
        logp = s / 0.1 - np.log(np.exp(s / 0.1 - (s / 0.1).max()).sum()) - (s / 0.1).max()
        assert np.abs(ours[i] - logp).max() < 5e-3, i
