"""A transformer that carries out K steps of ISTA on the in-context LASSO, exactly.

Objective (as `icsim.algorithms.sparse`): F(β) = (1/2n)‖Xβ − y‖² + λ‖β‖₁ on the n context
examples; ISTA with a fixed step η: β_{k+1} = soft(β_k − η (1/n)Xᵀ(Xβ_k − y), ηλ) from β_0 = 0.
Proximal gradient with the soft-threshold done by a ReLU MLP, as in Bai et al. 2023 (§3.3,
Lasso by proximal GD) and the ISTA part of Liu et al. 2025's LISTA-VM construction.

Token format: `Stacked(dim=d, n_queries, scratch=d)`, tokens [x_i; y_i; β] (β starts at 0), the
hidden state is the token (read_in off, n_embd = 2d + 1).

Layers k = 1..K (one ISTA step each), linear attention normalised by the number of keys (the
context tokens), one head of width d + 1:
  q_i = [β_i; −1] (the −1 is the query bias), k_j = [x_j; y_j], v_j = [x_j; 0]
  ⇒ attention_i = (1/n) Σ_j (x_jᵀβ_i − y_j) x_j = ∇(1/2n)‖Xβ_i − y‖²;
  the output projection adds −η × that to the β slot (so β ← z = β − η∇f(β));
  the ReLU MLP (hidden 4d) adds soft(z, ηλ) − z = ReLU(z − ηλ) − ReLU(−z − ηλ) − ReLU(z) + ReLU(−z),
  so β ← soft(z, ηλ) exactly.
Every token carries the same β (its update depends only on its own β and the context), so
`read_beta` reads it at the query token.
Layer K + 1 (read-out): q_i = x_i, k_j = β_j, v_j = 1 (a value bias) ⇒ (1/n) Σ_j x_iᵀβ_j = x_iᵀβ_K
is written to the y slot, where `read_out` (e_y) reads it: the query's output is x_qᵀβ_K.

Shape: K + 1 layers, 1 head of width d + 1, n_embd = 2d + 1, MLP hidden 4d (zero in the read-out
layer), attention="linear" (normalised), activation="relu", no LayerNorm, no positional
embedding, read_in off. The step size η is a fixed weight: the reference is
`icsim.algorithms.get("ista", lam=λ, step_size=η)`, not ISTA's per-problem 1/L.
"""

from __future__ import annotations

import torch

from icsim import _validate as V
from icsim.constructions.base import (
    CONSTRUCTIONS,
    Check,
    ConstructionInfo,
    empty_model,
    finish,
    float_dtype,
    in_dtype,
    info_of,
)
from icsim.models.formats import Stacked


class IstaCheck(Check):
    """Sparse linear-regression prompts (3 non-zero coordinates, x ~ N(0, Σ) with condition
    number κ, noise 0.1) against fixed-step ISTA; compared through β_k and the query
    predictions x_qᵀβ_k after every step.
    `verify` builds the weights in the dtype it runs (η and λ cast down from float32 would be
    off by ~1e-8)."""

    task = "sparse_linear_regression"

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        task_params = {"sparsity": min(3, info.dim), "noise_std": 0.1, **task_params}
        task = self.make_task(info, **task_params)
        n_ctx = 3 * info.dim if n_context is None else n_context
        return self.draw(task, fmt, n_problems, n_ctx, generator)

    def reference(self, info, problems):
        run = self.run_algorithm(info, problems)
        return torch.cat([run.iterates, run.predictions], dim=-1)

    def model_steps(self, model, fmt, problems, dtype):
        """[β_k; x_qᵀβ_k] per step; the last step's predictions are the model's own output, so
        the read-out layer is checked too."""
        batch, _ = problems
        model, batch = in_dtype(model, dtype), batch.to(dtype=dtype)
        K = info_of(model).steps
        with torch.no_grad():
            out, hidden = fmt.run(model, batch, return_hidden=True)
        preds = read_predictions(hidden[: K + 1], fmt.n_queries)
        preds[K] = out
        return torch.cat([read_beta(hidden[: K + 1]), preds], dim=-1)


@CONSTRUCTIONS.register("ista", check=IstaCheck)
def build_ista(
    dim: int = 20,
    steps: int = 10,
    lam: float = 0.1,
    step_size: float = 0.1,
    n_queries: int = 1,
    dtype: torch.dtype = torch.float32,
):
    """(model, token_format) carrying out `steps` ISTA steps with λ = `lam`, η = `step_size`.

    Defaults: λ = 0.1 as `icsim.algorithms.sparse`; η = 0.1 <= 1/L for Gaussian x ~ N(0, I_d)
    roughly when n >= d (1/L ≈ 1/(1 + √(d/n))²), so ISTA descends; pick η <= 1/λ_max(XᵀX/n).
    `dtype`: the weights' dtype (build float64 weights to verify in float64: casting a float32
    model loses η and λ's low bits).
    """
    d = V.positive_int("dim", dim)
    K = V.nonnegative_int("steps", steps)
    lam = V.number("lam", lam, low=0)
    eta = V.number("step_size", step_size, low=0, low_open=True)
    V.positive_int("n_queries", n_queries)
    dtype = float_dtype(dtype)
    D, hd = 2 * d + 1, d + 1
    model = empty_model(
        width=D,
        layers=K + 1,
        heads=1,
        head_dim=hd,
        normalize=True,
        mlp=True,
        mlp_hidden=4 * d,
        activation="relu",
        bias=True,
        causal=True,
    ).to(dtype)
    x, y, beta = slice(0, d), d, slice(d + 1, 2 * d + 1)
    eye = torch.eye(d, dtype=dtype)
    theta = eta * lam
    with torch.no_grad():
        for block in model.blocks[:K]:
            a, m = block.attn, block.mlp
            a.q.weight[:d, beta] = eye
            a.q.bias[d] = -1.0
            a.k.weight[:d, x] = eye
            a.k.weight[d, y] = 1.0
            a.v.weight[:d, x] = eye
            a.proj.weight[beta, :d] = -eta * eye
            # ReLU(z−θ), ReLU(−z−θ), ReLU(z), ReLU(−z) of the β slot z
            for r, (sign, bias) in enumerate([(1, -theta), (-1, -theta), (1, 0.0), (-1, 0.0)]):
                m.fc.weight[r * d : (r + 1) * d, beta] = sign * eye
                m.fc.bias[r * d : (r + 1) * d] = bias
            for r, sign in enumerate([1, -1, -1, 1]):
                m.proj.weight[beta, r * d : (r + 1) * d] = sign * eye
        a = model.blocks[K].attn
        a.q.weight[:d, x] = eye
        a.k.weight[:d, beta] = eye
        a.v.bias[0] = 1.0
        a.proj.weight[y, 0] = 1.0
        model.read_out.weight[0, y] = 1.0
    info = ConstructionInfo(
        name="ista",
        citation="Bai et al. 2023 §3.3; Liu et al. 2025 (LISTA-VM), the ISTA part",
        algorithm="ista",
        hyperparameters={"lam": lam, "step_size": eta},
        steps=K,
        dim=d,
        layers=K + 1,
        heads=1,
        width=D,
        head_dim=hd,
        layers_per_step=1,
        formulas={"layers": "K + 1", "heads": "1", "width": "2d + 1", "mlp_hidden": "4d"},
    )
    return finish(model, info), Stacked(dim=d, n_queries=n_queries, scratch=d)


def read_beta(hidden: torch.Tensor) -> torch.Tensor:
    """β held by the `ista` construction at the last (query) token: hidden [..., T, 2d+1] ->
    [..., d]. On `return_hidden`'s [L+1, B, T, 2d+1], entry k is β_k for k = 0..K (and β_K again
    after the read-out layer)."""
    d = (hidden.shape[-1] - 1) // 2
    return hidden[..., -1, d + 1 :]


def read_predictions(hidden: torch.Tensor, n_queries: int = 1) -> torch.Tensor:
    """x_qᵀβ_k at every query token: hidden [..., T, 2d+1] -> [..., n_queries] (the prediction
    of the estimate each layer holds, without the read-out layer)."""
    d = (hidden.shape[-1] - 1) // 2
    q = hidden[..., -n_queries:, :]
    return (q[..., :d] * q[..., d + 1 :]).sum(-1)
