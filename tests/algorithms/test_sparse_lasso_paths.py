"""`lasso`'s early exit: each problem leaves the batch as soon as a polish on its support passes
the KKT check; problems that need many iterations, ties and float32 still get the minimiser."""

import numpy as np
import torch

import icsim.algorithms
from icsim.algorithms.sparse import lasso_objective
from icsim.tasks.base import Problem

from .test_sparse import problems, sklearn_lasso


def kkt_violation(P, beta, lam):
    """max over coordinates of the KKT residual of β (0 at the minimiser)."""
    X, y, b = P.X.double(), P.y.double(), beta.double()
    c = torch.einsum("bnd,bn->bd", X, y - torch.einsum("bnd,bd->bn", X, b)) / X.shape[1]
    on = (c - lam * torch.sign(b)).abs().where(b != 0, torch.zeros_like(c))
    off = (c.abs() - lam).clamp(min=0).where(b == 0, torch.zeros_like(c))
    return torch.maximum(on, off).amax(-1)


def test_mixed_batch_easy_and_hard_problems_each_match_sklearn_and_one_by_one():
    easy = problems(6, 20, 10, seed=7)
    hard = problems(6, 20, 10, seed=8, ensemble="correlated", rho=0.99)  # many iterations
    P = Problem(*(torch.cat([getattr(easy, k), getattr(hard, k)]) for k in ("X", "y", "X_query")))
    lasso = icsim.algorithms.get("lasso", lam=0.02)
    beta = lasso.init(P)
    np.testing.assert_allclose(beta.numpy(), sklearn_lasso(P, 0.02), atol=1e-8)
    assert kkt_violation(P, beta, 0.02).max() < 1e-12
    for i in (0, 7, 11):  # a problem's answer does not depend on its batch-mates
        one = Problem(P.X[i : i + 1], P.y[i : i + 1], P.X_query[i : i + 1])
        torch.testing.assert_close(lasso.init(one)[0], beta[i], atol=1e-13, rtol=0)


def test_objective_matches_sklearn_with_duplicated_columns():
    P = problems(20, 15, 8, seed=9)
    X = P.X.clone()
    X[:, :, 1] = X[:, :, 0]  # a tie: the minimiser is not unique, the objective is
    P = Problem(X, P.y, P.X_query)
    beta = icsim.algorithms.get("lasso", lam=0.05).init(P)
    sk = torch.tensor(sklearn_lasso(P, 0.05))
    gap = lasso_objective(P.X, P.y, beta, 0.05) - lasso_objective(P.X, P.y, sk, 0.05)
    assert gap.max() < 1e-12
    assert kkt_violation(P, beta, 0.05).max() < 1e-9


def test_float32_problems_reach_float32_accuracy():
    P = problems(50, 40, 20, seed=10)
    b64 = icsim.algorithms.get("lasso").init(P)
    P32 = Problem(P.X.float(), P.y.float(), P.X_query.float())
    b32 = icsim.algorithms.get("lasso").init(P32)
    assert b32.dtype == torch.float32
    assert (b32.double() - b64).abs().max() < 1e-5
