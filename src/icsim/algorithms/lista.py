"""Learned ISTA: the learning-to-optimize baselines Liu et al. 2025 (arXiv 2410.13981) compare
transformers with. `LISTA` (Gregor & LeCun 2010) and `LISTACP` (Chen et al. 2018) are K-layer
unrolled networks for one fixed measurement matrix, trained by `fit` (through the one `Trainer`)
and run step by step through the `lista` / `lista_cp` algorithms (step k = layer k). They solve
the LASSO of `icsim.algorithms.sparse` (same λ convention and default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from icsim import _validate as V
from icsim.algorithms.base import ALGORITHMS, Algorithm
from icsim.algorithms.sparse import DEFAULT_LAM, lipschitz_constant, soft_threshold
from icsim.errors import InputError
from icsim.tasks.base import Problem


class _Unrolled(nn.Module):
    """K untied layers β_{k+1} = layer_k(y, β_k) from β_0 = 0, for one fixed X [n, d]."""

    def __init__(self, X: torch.Tensor, layers: int, lam: float):
        super().__init__()
        V.positive_int("layers", layers)
        V.number("lam", lam, low=0)
        X = torch.as_tensor(X)
        if X.dim() != 2 or not X.is_floating_point():
            raise InputError(
                f"X must be one fixed measurement matrix [n, d] of floats, got shape "
                f"{list(X.shape)} ({X.dtype}); batched matrices are what LISTA cannot take."
            )
        self.register_buffer("X", X)
        self.n_layers = layers
        self.lam = lam
        self.L = float(lipschitz_constant(X.double()))

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    def layer(self, k: int, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, y: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """y [B, n] -> estimates after every layer [K+1, B, d] (entry 0 is β_0 = 0)."""
        beta = y.new_zeros(y.shape[0], self.dim)
        out = [beta]
        for k in range(self.n_layers if layers is None else layers):
            beta = self.layer(k, y, beta)
            out.append(beta)
        return torch.stack(out)


class LISTA(_Unrolled):
    """LISTA (Gregor & LeCun 2010, eq. 4 of Chen et al. 2018): β_{k+1} = soft(W1_k y + W2_k β_k,
    θ_k), untied per layer. Initialised at ISTA with step 1/L: W1 = Xᵀ/(nL), W2 = I − XᵀX/(nL),
    θ = λ/L, so the untrained network *is* K steps of `ista(lam=λ)` on X."""

    def __init__(self, X: torch.Tensor, layers: int = 16, lam: float = DEFAULT_LAM):
        super().__init__(X, layers, lam)
        X = self.X
        n, d, L = self.n, self.dim, self.L
        W1 = X.T / (n * L)
        W2 = torch.eye(d, dtype=X.dtype, device=X.device) - X.T @ X / (n * L)
        self.W1 = nn.Parameter(W1.expand(layers, d, n).clone())
        self.W2 = nn.Parameter(W2.expand(layers, d, d).clone())
        self.theta = nn.Parameter(X.new_full((layers,), lam / L))

    def layer(self, k, y, beta):
        return soft_threshold(y @ self.W1[k].T + beta @ self.W2[k].T, self.theta[k])


class LISTACP(_Unrolled):
    """LISTA-CP (Chen et al. 2018, eq. 13, coupled weights): β_{k+1} = soft(β_k + W_kᵀ(y − Xβ_k),
    θ_k), W_k [n, d]; initialised at ISTA (W = X/(nL), θ = λ/L). X is the fixed training
    matrix (a buffer), not the problem's."""

    def __init__(self, X: torch.Tensor, layers: int = 16, lam: float = DEFAULT_LAM):
        super().__init__(X, layers, lam)
        X, L = self.X, self.L
        self.W = nn.Parameter((X / (self.n * L)).expand(layers, *X.shape).clone())
        self.theta = nn.Parameter(X.new_full((layers,), lam / L))

    def layer(self, k, y, beta):
        residual = y - beta @ self.X.T
        return soft_threshold(beta + residual @ self.W[k], self.theta[k])


NETWORKS = {"lista": LISTA, "lista_cp": LISTACP}


def fit(
    network: _Unrolled,
    task,
    *,
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss: str = "final",
    generator: torch.Generator | None = None,
    verbose: bool = False,
) -> list[float]:
    """Train an unrolled network with Adam on fresh prompts of `task` every step (Chen et al.
    2018 train on fresh sparse codes for their fixed matrix): minimise ‖β_K − β*‖² (loss="final")
    or its mean over layers ("all"). `task` should be `sparse_recovery(ensemble="fixed")` whose
    first n rows are the network's X (other tasks train it to generalise, as far as it can).

    Quick CPU settings: d=20, n=10, K=8, 300-500 steps of batch 128 take seconds; Chen et al.'s
    scale (d=500, n=250, K=16, batch 64, lr 5e-4 with layer-wise stages) needs a GPU.
    Returns the training loss of every step.
    """
    V.positive_int("steps", steps)
    V.positive_int("batch_size", batch_size)
    V.number("lr", lr, low=0, low_open=True)
    V.choice("loss", loss, ("final", "all"))
    if getattr(task, "dim", None) != network.dim:
        raise InputError(
            f"task has dim={getattr(task, 'dim', None)} but the network was built for "
            f"X with d={network.dim} columns; build the task with dim={network.dim}."
        )
    from icsim.training import Optim, Run, Trainer  # here: algorithms import no training

    X = network.X
    if generator is None:
        generator = torch.Generator(device=X.device).manual_seed(0)

    def sample(step, rng):  # the caller's generator, so `fit` continues its stream
        return task.sample(
            batch_size, network.n, generator=generator, device=X.device, dtype=X.dtype
        )

    def regression_to_beta_star(forward, batch):
        err = ((forward(batch.ys) - batch.beta_star) ** 2).sum(-1).mean(-1)  # [K+1]
        return err[-1] if loss == "final" else err[1:].mean()

    def progress(row):
        step = row["step"]
        if (step - 1) % max(steps // 10, 1) == 0 or step == steps:
            print(f"fit {type(network).__name__}: step {step}/{steps} loss {row['loss']:.4g}")

    trainer = Trainer(
        network,
        sample=sample,
        loss=regression_to_beta_star,
        optim=Optim(steps=steps, lr=lr, grad_clip=0.0, kind="adam"),
        run=Run(log_every=1, quiet=True),
        device=X.device,
        on_log=progress if verbose else None,
    )
    trainer.train()
    network.eval()
    return [row["loss"] for row in trainer.history]


@dataclass(frozen=True)
class _UnrolledAlgorithm(Algorithm):
    """Step k applies the trained network's layer k to the problem's y (X is the network's own
    fixed matrix: that is what these L2O baselines can do). State: (β [B, d], k [])."""

    network: _Unrolled | None = field(default=None, compare=False)
    kind = _Unrolled
    family = "sparse_recovery"

    def __post_init__(self):
        if not isinstance(self.network, self.kind):
            raise InputError(
                f"{self.name} needs a trained network: net = icsim.algorithms.lista."
                f"{self.kind.__name__}(X, layers=K); icsim.algorithms.lista.fit(net, task); "
                f"then get({self.name!r}, network=net). Got {type(self.network).__name__}."
            )

    def init(self, problem: Problem):
        net = self.network
        if problem.X.shape[1:] != net.X.shape:
            raise InputError(
                f"{self.name} was trained for n={net.n} measurements of dim d={net.dim}, but "
                f"the problem's context X has shape {list(problem.X.shape[1:])}; "
                f"use n_context={net.n}."
            )
        X = problem.X
        return X.new_zeros(X.shape[0], X.shape[2]), torch.zeros((), dtype=torch.long)

    def step(self, problem: Problem, state):
        beta, k = state
        net = self.network
        if int(k) >= net.n_layers:
            raise InputError(
                f"{self.name} has {net.n_layers} layers: run it for at most {net.n_layers} steps."
            )
        with torch.no_grad():
            new = net.layer(int(k), problem.y.to(net.X.dtype), beta.to(net.X.dtype))
        return new.to(beta.dtype), k + 1


@ALGORITHMS.register("lista")
class LISTAAlgorithm(_UnrolledAlgorithm):
    """LISTA (Gregor & LeCun 2010) run layer by layer; `network` a trained `LISTA`."""

    name, kind = "lista", LISTA


@ALGORITHMS.register("lista_cp")
class LISTACPAlgorithm(_UnrolledAlgorithm):
    """LISTA-CP (Chen et al. 2018) run layer by layer; `network` a trained `LISTACP`."""

    name, kind = "lista_cp", LISTACP


__all__ = ["LISTA", "LISTACP", "NETWORKS", "fit", "LISTAAlgorithm", "LISTACPAlgorithm"]
