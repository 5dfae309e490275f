"""Gradient descent (and GD++) by linear self-attention on stacked tokens (von Oswald et al. 2023).

Tokens are the `Stacked` format's [x_i; y_i] (query [x_q; 0]); keys and values are the context
tokens only, and attention is normalised by their number n, so the 1/n of the loss
L(w) = 1/(2n) Σ_i (wᵀx_i − y_i)² comes from the attention, whatever n the prompt has.

The y-slot of every token carries a residual: after t layers it holds y_i − w_tᵀx_i for a
context token and −w_tᵀx_q for a query (y_q = 0), so the read-out −(y-slot) of a query is GD's
prediction w_tᵀx_q after every layer.
"""

from __future__ import annotations

from icsim import _validate as V
from icsim.constructions.base import (
    CONSTRUCTIONS,
    ConstructionInfo,
    RegressionCheck,
    empty_model,
    finish,
    head_weights,
    put,
    rows,
)
from icsim.models import Stacked
from icsim.models.construction_formats import Layout

VON_OSWALD = "von Oswald et al. 2023, Transformers learn in-context by gradient descent"


@CONSTRUCTIONS.register("gd", check=RegressionCheck)
def gd(dim: int = 5, steps: int = 1, step_size: float = 0.1, n_queries: int = 1):
    """T steps of GD from w₀ = 0 with step size η in T linear self-attention layers
    (von Oswald et al. 2023, Prop. 1).

    Size: layers = T, heads = 1, width = d + 1, head dim = d. Layer t (one head):
    q = k = x, v = y-slot, projection −η into the y-slot, so with attention normalised by n
      y_j ← y_j − η (1/n) Σ_i (x_jᵀx_i) y_i   (the residual update of one GD step).
    Reference: algorithms `gradient_descent(step_size=η)`. Read-out: −(query's y-slot).
    """
    d = V.positive_int("dim", dim)
    T = V.positive_int("steps", steps)
    eta = V.number("step_size", step_size, low=0, low_open=True)
    L = Layout(x=d, y=1)
    model = empty_model(width=L.width, layers=T, heads=1, head_dim=d, normalize=True)
    for block in model.blocks:
        q, k, v, o = head_weights(block)
        put(q[0], rows(0, d), L.x)
        put(k[0], rows(0, d), L.x)
        put(v[0], rows(0, 1), L.y)
        put(o[:, 0], L.y, rows(0, 1), -eta)
    put(model.read_out.weight.data, rows(0, 1), L.y, -1.0)
    info = ConstructionInfo(
        name="gd",
        citation=VON_OSWALD + ", Prop. 1",
        algorithm="gradient_descent",
        hyperparameters={"step_size": eta},
        steps=T,
        dim=d,
        layers=T,
        heads=1,
        width=d + 1,
        head_dim=d,
        layers_per_step=1,
        formulas={"layers": "T", "heads": "1", "width": "d + 1", "head_dim": "d"},
    )
    return finish(model, info), Stacked(d, n_queries=n_queries)


@CONSTRUCTIONS.register("gd_plus_plus", check=RegressionCheck)
def gd_plus_plus(
    dim: int = 5, steps: int = 1, step_size: float = 0.1, gamma: float = 0.1, n_queries: int = 1
):
    """T steps of GD++ in T linear self-attention layers (von Oswald et al. 2023, GD++).

    Size: layers = T, heads = 1, width = d + 1, head dim = d + 1. Layer t (one head):
    q = k = [x; 0], v = [x; y], projection −γ into x and −η into the y-slot, so with attention
    normalised by n, for every token (context and queries)
      y_j ← y_j − η (1/n) Σ_i (x_jᵀx_i) y_i,   x_j ← x_j − γ (1/n) Σ_i x_i x_iᵀ x_j,
    both from the layer's input. Convention: the curvature term is normalised by n (the paper's;
    a γ' without it is γ = n γ'). Reference: algorithms `gd_plus_plus(step_size=η, gamma=γ)`.
    """
    d = V.positive_int("dim", dim)
    T = V.positive_int("steps", steps)
    eta = V.number("step_size", step_size, low=0, low_open=True)
    gam = V.number("gamma", gamma, low=0)
    L = Layout(x=d, y=1)
    model = empty_model(width=L.width, layers=T, heads=1, head_dim=d + 1, normalize=True)
    for block in model.blocks:
        q, k, v, o = head_weights(block)
        put(q[0], rows(0, d), L.x)
        put(k[0], rows(0, d), L.x)
        put(v[0], rows(0, d), L.x)
        put(v[0], rows(d, 1), L.y)
        put(o[:, 0], L.x, rows(0, d), -gam)
        put(o[:, 0], L.y, rows(d, 1), -eta)
    put(model.read_out.weight.data, rows(0, 1), L.y, -1.0)
    info = ConstructionInfo(
        name="gd_plus_plus",
        citation=VON_OSWALD + ", GD++ (Sec. 4)",
        algorithm="gd_plus_plus",
        hyperparameters={"step_size": eta, "gamma": gam},
        steps=T,
        dim=d,
        layers=T,
        heads=1,
        width=d + 1,
        head_dim=d + 1,
        layers_per_step=1,
        formulas={"layers": "T", "heads": "1", "width": "d + 1", "head_dim": "d + 1"},
    )
    return finish(model, info), Stacked(d, n_queries=n_queries)
