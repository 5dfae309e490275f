"""LISTA and LISTA-CP: initialised at ISTA, and after brief training on one fixed matrix they beat
ISTA at the same number of steps on it (and lose that edge on an unseen matrix)."""

import pytest
import torch

import icsim.algorithms
import icsim.tasks
from icsim.algorithms.sparse import LISTA, LISTACP, fit
from icsim.errors import InputError

D, N, K, S = 20, 12, 8, 2


def fixed_task(matrix_seed=3):
    return icsim.tasks.get(
        "sparse_recovery",
        dim=D,
        sparsity=S,
        ensemble="fixed",
        fixed_rows=N,
        matrix_seed=matrix_seed,
    )


def held_out(task, dtype=torch.float32, seed=99, batch=2000):
    b = task.sample(batch, N + 1, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return b, b.split(N)


def nmse(est, beta):
    return (((est - beta) ** 2).sum(-1) / (beta**2).sum(-1)).mean().item()


@pytest.mark.parametrize("cls,name", [(LISTA, "lista"), (LISTACP, "lista_cp")])
def test_untrained_network_is_ista(cls, name):
    task = fixed_task()
    X = task.fixed_matrices(N)[0]
    net = cls(X, layers=K, lam=0.1).double()
    _, P = held_out(task, dtype=torch.float64, batch=50)
    ours = icsim.algorithms.get(name, network=net).run(P, K)
    ista = icsim.algorithms.get("ista", lam=0.1).run(P, K)
    torch.testing.assert_close(ours.iterates, ista.iterates, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.predictions, ista.predictions, atol=1e-12, rtol=0)
    torch.testing.assert_close(net(P.y), ista.iterates, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cls,name", [(LISTA, "lista"), (LISTACP, "lista_cp")])
def test_trained_network_beats_ista_on_its_matrix(cls, name):
    task = fixed_task()
    net = cls(task.fixed_matrices(N)[0].float(), layers=K, lam=0.1)
    history = fit(net, task, steps=300, batch_size=128, lr=1e-3)
    assert history[-1] < 0.3 * history[0]
    b, P = held_out(task)
    ours = icsim.algorithms.get(name, network=net).run(P, K).iterates
    ista = icsim.algorithms.get("ista", lam=0.1).run(P, K).iterates
    fista = icsim.algorithms.get("fista", lam=0.1).run(P, K).iterates
    e_ours, e_ista = nmse(ours[-1], b.beta_star), nmse(ista[-1], b.beta_star)
    # measured (d=20, n=12, s=2, K=8, 300 steps): ≈ 0.08 (LISTA) / 0.05 (LISTA-CP) vs 0.36 (ISTA)
    assert e_ours < 0.5 * e_ista
    assert e_ours < nmse(fista[-1], b.beta_star)
    # on an unseen matrix the fixed-X network is much worse than on its own (Liu et al. 2025 §6)
    b2, P2 = held_out(fixed_task(matrix_seed=4))
    unseen = icsim.algorithms.get(name, network=net).run(P2, K).iterates[-1]
    assert nmse(unseen, b2.beta_star) > 3 * e_ours


def test_wrapper_and_fit_errors():
    task = fixed_task()
    net = LISTA(task.fixed_matrices(N)[0].float(), layers=3)
    alg = icsim.algorithms.get("lista", network=net)
    _, P = held_out(task, batch=4)
    with pytest.raises(InputError, match="at most 3 steps"):
        alg.run(P, 4)
    with pytest.raises(InputError, match="n_context"):
        alg.run(task.sample(4, N + 3).split(N + 2), 1)
    with pytest.raises(InputError, match="LISTACP"):
        icsim.algorithms.get("lista_cp", network=net)
    with pytest.raises(InputError, match="dim"):
        fit(net, icsim.tasks.get("sparse_recovery", dim=D + 1), steps=1)
    with pytest.raises(InputError, match="one fixed measurement matrix"):
        LISTA(torch.randn(2, N, D))
    with pytest.raises(InputError):
        LISTA(torch.randn(N, D), layers=0)
