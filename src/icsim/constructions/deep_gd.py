"""A ReLU-attention transformer with element-wise multiplication layers that carries out L steps
of in-context gradient descent on an N-layer ReLU network (Wu, Su, Hu, Song, Liu 2025,
"Transformers are Deep Optimizers", Theorem 1): (2N+4)L layers, tokens
h_i = [x_i; y_i; w̄; 0; 1; t_i].

Per GD step (one "block" of 2N+4 residual layers, every layer acting on the whole token):
  1..N    attention, forward pass: z_j = W_j p_{j−1}, p_j = r(z_j) (p_0 = x, z_N = f(w̄, x)).
          Head (k, ±) scores ReLU(±⟨p_{j−1,i}, row k of W_j⟩) — W_j from the key token's w̄,
          identical on every token — with value 1, so the 1/n-normalised sum over the n context
          keys is ReLU(±z_jk): z_jk = ReLU(z) − ReLU(−z), p_jk = ReLU(z). Exact.
  N+1     attention, activation derivative: M_j = W_{j+1} diag(r̂′(z_j)) for j < N. r′ = 1[z > 0]
          is replaced by r̂′, its piecewise-linear interpolant on `heads` knots t_m of spacing
          h = 2R/(heads − 1) with one knot at 0, written as a sum of ReLUs (Bai et al. 2023's
          sum-of-ReLU approximation): head m of unit (j, l) scores ReLU(z_jl − t_m) and carries
          the value c_m·(column l of W_{j+1}). The only approximate layer:
          r̂′(z) = clip(z/h, 0, 1), equal to r′ except on the ramp 0 < z < h.
  N+2     MLP, loss derivative: δ_N = f − y = ReLU(f − y) − ReLU(y − f). Exact.
  N+3..2N+2  EWML (`icsim.models.ewml`), chain rule from j = N down to 1: G_j = δ_j p_{j−1}ᵀ
          (the token's share of ∂L/∂W_j) and δ_{j−1} = M_{j−1}ᵀ δ_j. Exact (products).
  2N+3    attention, update: one head scores 1 against every context key and carries G, so
          w̄ ← w̄ − η (1/n) Σ_i G_i = w̄ − η ∇L_n(w̄) with the approximate r̂′. Exact given G.
  2N+4    MLP, projection onto W = {‖w̄‖_∞ ≤ radius} (clip = w − ReLU(w − B) + ReLU(−w − B)) and
          reset of the scratch (s − ReLU(s) + ReLU(−s) = 0) for the next step. Exact.
After the L blocks, N more forward layers (`readout=True`) put f(w̄^(L), x_i) in z_N, which the
read-out returns: the prediction for the query tokens.

What is exact and what is not (the paper has no code; this is the closest faithful version):
- exact (to float rounding): the forward pass (ReLU is a ReLU), the squared-loss derivative, the
  chain rule (EWML products), the averaging over context tokens, the ℓ∞ projection;
- approximate: r′ only. A step function has no uniform ReLU-sum approximation, so the
  theorem's per-step error ‖ε^(l)‖ ≤ ηε has ε = the gradient error caused by the pre-activations
  that fall on the ramp (0, h): it shrinks as the heads grow and vanishes once h is below every
  positive pre-activation on the trajectory. For a step, only the 2 heads per unit at the knots
  0 and h carry non-zero weights (c = ±1/h); the head count matters only through h (the
  weight-norm price 1/h of Bai et al.'s bound). `prune_heads=True` keeps only those heads.
- not the paper's: the ℓ2-ball projection (no exact MLP; use norm="linf" in `relu_network_gd`);
  the query tokens are kept out of the gradient by the attention mask (keys = context tokens,
  as `Stacked`) rather than by t_i, which is carried but unused; the final N read-out layers.
Checks: the model equals `relu_network_gd(derivative_ramp=h)` — GD with its own r̂′ — to float
rounding (`DeepGDCheck`, used by `icsim construct deep_gd --verify`); `verify_deep_gd` measures
the distance to exact GD, step by step, against Theorem 1's ηε, and against the number of heads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from icsim import _validate as V
from icsim.algorithms.deep_gd import (
    loss_gradient,
    ramp_derivative,
)
from icsim.constructions.base import (
    CONSTRUCTIONS,
    Check,
    ConstructionInfo,
    Criterion,
    conditioned,
    float_dtype,
    in_dtype,
)
from icsim.constructions.deep_gd_layers import gd_layers, relu_sum_interpolant  # noqa: F401
from icsim.errors import InputError
from icsim.models.construction_formats import DeepGDFormat
from icsim.tasks.relu_network import NetworkShape, network_forward

# ---- the construction -----------------------------------------------------------------------


class DeepGDCheck(Check):
    """How `icsim.constructions.verify` (and `icsim construct deep_gd --verify`) checks the
    construction: `relu_network_regression` prompts (a random network of the construction's depth
    and width per prompt, 3·dim context examples by default), inputs rescaled per coordinate to a
    covariance condition number κ, against `relu_network_gd` with the construction's r̂′
    (`derivative_ramp`) — the GD the model carries out exactly; compared: w̄ after every block.
    Its criterion adds Theorem 1's: every one-step error against exact GD (true r′) is within
    ηε (`_measure`), so the one check covers the exact layers and the approximate one."""

    task = "relu_network_regression"
    fixed_task_params = ("dim", "depth", "width")
    defaults = {"steps": 3, "dim": 3, "n_problems": 8}

    def sample(
        self, info, fmt, n_problems, *, generator, n_context=None, condition_number=1, **task_params
    ):
        hp = info.hyperparameters
        n_ctx = 3 * info.dim if n_context is None else n_context
        task = self.make_task(info, depth=hp["depth"], width=hp["width"], **task_params)
        batch, _ = self.draw(task, fmt, n_problems, n_ctx, generator)
        if condition_number != 1:
            xs = conditioned(batch.xs, condition_number)
            ys = network_forward(fmt.shape, batch.w_star, xs)
            batch = replace(batch, xs=xs, ys=ys)
        return batch, n_ctx, fmt

    def reference(self, info, problems):
        from icsim.algorithms import get as get_algorithm

        batch, n_ctx, fmt = problems
        w0 = fmt.initial_weights(batch)
        alg = get_algorithm("relu_network_gd", **info.hyperparameters, w0=w0)
        return alg.run(batch, info.steps, n_context=n_ctx).iterates

    def model_steps(self, model, fmt, problems, dtype):
        batch = problems[0].to(dtype=dtype)
        return model_weights(in_dtype(model, dtype), fmt, batch)

    def criterion(self, run):
        tol, exact, _ = super().criterion(run)
        # Theorem 1's bound is about the weights, not the run's rounding: float64 weights
        model = deep_gd(**{**run.params, "dtype": "float64"})[0] if run.params else run.model
        model = in_dtype(model, torch.float64)
        batch, _, fmt = run.problems[0]  # Theorem 1's bound on the first κ's prompts
        m = _measure(model, fmt, batch)
        return Criterion(
            tol,
            f"{exact} against GD with the model's r̂′; and every one-step error against exact GD "
            f"<= Theorem 1's ηε (max {max(m['one_step_error']):.2e} vs {max(m['bound']):.2e})",
            m["within_bound"],
        )


@CONSTRUCTIONS.register("deep_gd", check=DeepGDCheck)
def deep_gd(
    dim: int = 3,
    depth: int = 2,
    width: int = 3,
    steps: int = 2,
    step_size: float = 0.01,
    radius: float | None = None,
    heads: int = 257,
    derivative_range: float = 4.0,
    prune_heads: bool = False,
    readout: bool = True,
    n_queries: int = 1,
    init_scale: float = 1.0,
    seed: int = 0,
    w0: torch.Tensor | None = None,
    dtype="float64",
):
    """(model, token format) running `steps` = L steps of `relu_network_gd` (same depth, width,
    step_size, radius with norm="linf", seed, init_scale) in (2N+4)L (+N read-out) layers
    (Wu et al. 2025, Theorem 1; module docstring for the layer-by-layer recipe).

    heads: knots of the ReLU-sum interpolant of r′ on [−derivative_range, derivative_range]
      (heads per hidden unit in the r′ layer; ramp width h = 2R/(heads − 1)). Default 257
      (h = 1/32 for R = 4). prune_heads keeps only the 2 non-zero heads per unit (same
      function, far cheaper to run).
    readout: append N forward layers so the read-out is f(w̄^(L), x_query) (default True).
    dtype: of the weights ("float64" default, as the other constructions; `.float()` it for
      float32 runs — building in float32 rounds η, the knots and 1/h).
    """
    shape = NetworkShape(dim, depth, width)
    V.positive_int("steps", steps)
    V.number("step_size", step_size, low=0, low_open=True)
    if radius is not None:
        V.number("radius", radius, low=0, low_open=True)
    V.positive_int("heads", heads)
    if heads < 2:
        raise InputError(f"heads must be >= 2 (knots of the r′ interpolant), got {heads}.")
    V.number("derivative_range", derivative_range, low=0, low_open=True)
    V.number("init_scale", init_scale, low=0)
    V.nonnegative_int("seed", seed)
    dtype = float_dtype(dtype)
    fmt = DeepGDFormat(dim, depth, width, n_queries, init_scale, seed, w0)
    lay, N = fmt.layout, depth

    model, specs, n_dheads = gd_layers(
        shape, lay, steps=steps, step_size=step_size, radius=radius, heads=heads,
        derivative_range=derivative_range, prune_heads=prune_heads, readout=readout,
    )  # fmt: skip
    ramp = 2 * derivative_range / (heads - 1)
    heads_per_layer = [spec.n_head for spec in specs if spec.kind == "attention"]
    model.construction = ConstructionInfo(
        name="deep_gd",
        citation="Wu, Su, Hu, Song, Liu 2025 (Transformers are Deep Optimizers), Theorem 1",
        algorithm="relu_network_gd",
        hyperparameters=dict(
            depth=depth,
            width=width,
            step_size=step_size,
            radius=radius,
            norm="linf",
            init_scale=init_scale,
            seed=seed,
            derivative_ramp=ramp,
        ),
        steps=steps,
        dim=dim,
        layers=len(specs),
        heads=max(heads_per_layer),
        width=lay.width,
        head_dim=max(spec.head_dim for spec in specs if spec.kind == "attention"),
        layers_per_step=2 * N + 4,
        formulas={
            "layers": "(2N+4)·L + N read-out" if readout else "(2N+4)·L",
            "width": "d + 1 + 2·D_w + O(N·K²) + 2",
            "heads": "r′ layer: heads·(N−1)·K (2 per unit pruned); forward: 2K; update: 1",
            "derivative_heads": str(n_dheads),
        },
    )
    return model.to(dtype).eval(), fmt


# ---- verification ---------------------------------------------------------------------------


def _derivative_heads(model) -> int:
    return int(model.construction.formulas["derivative_heads"])


def _ramp(model) -> float:
    return model.construction.hyperparameters["derivative_ramp"]


def model_weights(model, fmt, batch, chunk: int | None = None) -> torch.Tensor:
    """The model's w̄ after every block, read from the hidden states: [L+1, B, D_w] (first token;
    see `token_spread`). Runs `chunk` problems at a time (default: ~2·10⁷ attention scores)."""
    info = model.construction
    T = batch.n_points
    chunk = chunk or max(1, int(2e7 // (info.heads * T * T)))
    w0 = fmt.initial_weights(batch)  # per problem: a chunk must not redraw the first rows
    out = []
    with torch.no_grad():
        for i in range(0, batch.batch_size, chunk):
            part = replace(batch, xs=batch.xs[i : i + chunk], ys=batch.ys[i : i + chunk])
            part_fmt = replace(fmt, w0=w0[i : i + chunk])
            _, hidden = part_fmt.run(model, part, return_hidden=True)
            out.append(part_fmt.read_weights(hidden[info.step_blocks]))
    return torch.cat(out, dim=1)


def token_spread(model, fmt, batch) -> float:
    """Largest difference between tokens' w̄ slots over all layers (0: every token agrees)."""
    with torch.no_grad():
        _, hidden = fmt.run(model, batch, return_hidden=True)
    lay = fmt.layout
    w = hidden[..., lay.w : lay.w + fmt.shape.n_params]
    return (w - w[:, :, :1]).abs().amax().item()


def _gd(model, fmt, batch, problem, exact: bool):
    """relu_network_gd's trajectory from the model's start: its own r̂′ or (exact) the true r′."""
    from icsim.algorithms import get as get_algorithm

    hp = dict(model.construction.hyperparameters)
    if exact:
        hp["derivative_ramp"] = None
    alg = get_algorithm("relu_network_gd", **hp, w0=fmt.initial_weights(batch))
    return alg, alg.run(problem, model.construction.steps)


def _measure(model, fmt, batch):
    """Per step l = 0..L (max over problems): the model's distance to GD, its one-step error
    ‖ε^(l)‖ with the theorem's bound η‖∇̃L_n − ∇L_n‖ at the model's previous iterate (∇̃: the
    gradient with the model's r̂′), and its distance to GD with r̂′ (the exactness check)."""
    problem = batch.split(batch.n_points - fmt.n_queries)
    X, y, shape = problem.X, problem.y, fmt.shape
    w_model = model_weights(model, fmt, batch)  # [L+1, B, D_w]
    exact_alg, exact = _gd(model, fmt, batch, problem, exact=True)
    _, surrogate = _gd(model, fmt, batch, problem, exact=False)
    prev = w_model[:-1]
    one_step = (w_model[1:] - torch.stack([exact_alg.step(problem, w) for w in prev])).norm(dim=-1)
    ramp = ramp_derivative(_ramp(model))
    grad_err = torch.stack(
        [loss_gradient(shape, w, X, y, ramp) - loss_gradient(shape, w, X, y) for w in prev]
    ).norm(dim=-1)  # [L, B]
    bound = exact_alg.step_size * grad_err
    with torch.no_grad():
        preds = fmt.run(model, batch)
    scale = max(1.0, exact.iterates.norm(dim=-1).max().item())
    zero = [0.0]
    return {
        "distance_to_gd": (w_model - exact.iterates).norm(dim=-1).amax(-1).tolist(),
        "one_step_error": zero + one_step.amax(-1).tolist(),
        "bound": zero + bound.amax(-1).tolist(),
        # the projection is nonexpansive: ‖ε^(l)‖ <= η‖∇̃ − ∇‖ per problem if the rest is exact
        "within_bound": bool((one_step <= bound * (1 + 1e-6) + 1e-12 * scale).all()),
        "epsilon": grad_err.max().item(),
        "surrogate_deviation": (w_model - surrogate.iterates).norm(dim=-1).amax(-1).tolist(),
        "prediction_deviation": (preds - exact.predictions[-1]).abs().max().item(),
        "token_spread": token_spread(model, fmt, batch),
        "scale": scale,
    }


def verify_deep_gd(
    dim: int = 3,
    depth: int = 3,
    width: int = 3,
    n_context: int = 12,
    steps: int = 3,
    step_size: float = 0.01,
    radius: float | None = 2.0,
    heads: int = 257,
    derivative_range: float = 4.0,
    epsilon: float | None = None,
    heads_sweep: tuple[int, ...] = (3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 4097, 16385),
    batch_size: int = 8,
    seed: int = 0,
    figure: str | Path | None = None,
) -> dict:
    """Build `deep_gd` and run it in float64 on `relu_network_regression` prompts (a network of
    the same depth and width per prompt, n_context examples + 1 query) against `relu_network_gd`.

    Theorem 1 says w̄^(l) = Proj_W(w̄^(l−1) − η∇L_n(w̄^(l−1)) + ε^(l−1)) with ‖ε‖ <= ηε, ε the
    accuracy of the in-context gradient. Per step l (after block l, max over problems) we report
    the distance ‖w̄^(l) − w̄^(l)_GD‖₂ to exact GD, the one-step error ‖ε^(l)‖ = ‖w̄^(l) −
    Proj(w̄^(l−1) − η∇L_n(w̄^(l−1)))‖₂, and the bound ηε with ε = ‖∇̃L_n − ∇L_n‖ at w̄^(l−1), the
    error of the gradient with the construction's r̂′ (computed by `loss_gradient`, not by the
    model). Passes when the model equals GD with its own r̂′ to 1e-9 relative (every layer but
    r̂′ is exact), every one-step error is within its bound, and, if `epsilon` is given, every
    one-step error is <= η·epsilon (are the heads enough for that target?). `heads_sweep`
    (pruned models, same functions) gives error against heads; `figure` writes a PNG of error
    against heads and against L.
    """
    from icsim.tasks import get as get_task

    V.positive_int("n_context", n_context)
    V.positive_int("batch_size", batch_size)
    if epsilon is not None:
        V.number("epsilon", epsilon, low=0, low_open=True)
    params = dict(
        dim=dim,
        depth=depth,
        width=width,
        steps=steps,
        step_size=step_size,
        radius=radius,
        derivative_range=derivative_range,
        seed=seed,
        dtype="float64",
    )
    task = get_task("relu_network_regression", dim=dim, depth=depth, width=width)
    gen = torch.Generator().manual_seed(seed)
    batch = task.sample(batch_size, n_context + 1, generator=gen, dtype=torch.float64)

    model, fmt = deep_gd(heads=heads, **params)
    m = _measure(model, fmt, batch)
    tol = 1e-9 * m["scale"]
    exact_ok = max(m["surrogate_deviation"]) <= tol and m["token_spread"] <= tol
    meets_target = None if epsilon is None else max(m["one_step_error"]) <= step_size * epsilon

    sweep = {"heads": [], "ramp_width": [], "max_distance_to_gd": [], "max_one_step_error": []}
    sweep["distance_by_step"] = {}
    for M in heads_sweep:
        mm, _ = deep_gd(heads=M, prune_heads=True, **params)
        r = _measure(mm, fmt, batch)
        sweep["heads"].append(M)
        sweep["ramp_width"].append(_ramp(mm))
        sweep["max_distance_to_gd"].append(max(r["distance_to_gd"]))
        sweep["max_one_step_error"].append(max(r["one_step_error"]))
        sweep["distance_by_step"][M] = r["distance_to_gd"]

    passed = exact_ok and m["within_bound"] and meets_target is not False
    info = model.construction
    result = {
        "construction": "deep_gd",
        "params": {**params, "heads": heads, "n_context": n_context, "batch_size": batch_size},
        "layers": info.layers,
        "layers_per_step": info.layers_per_step,
        "heads": heads,
        "derivative_heads": _derivative_heads(model),
        "ramp_width": _ramp(model),
        "steps": list(range(steps + 1)),
        "distance_to_gd": m["distance_to_gd"],
        "one_step_error": m["one_step_error"],
        "bound": m["bound"],
        "epsilon": m["epsilon"],
        "epsilon_target": epsilon,
        "surrogate_deviation": m["surrogate_deviation"],
        "prediction_deviation": m["prediction_deviation"],
        "token_spread": m["token_spread"],
        "exact_parts_ok": exact_ok,
        "within_bound": m["within_bound"],
        "meets_target": meets_target,
        "passed": bool(passed),
        "heads_sweep": sweep,
        "figure": None,
    }
    result["scalars"] = {
        "max_distance_to_gd": max(m["distance_to_gd"]),
        "max_one_step_error": max(m["one_step_error"]),
        "max_bound": max(m["bound"]),
        "epsilon": m["epsilon"],
        "max_surrogate_deviation": max(m["surrogate_deviation"]),
        "prediction_deviation": m["prediction_deviation"],
        "layers": info.layers,
        "derivative_heads": _derivative_heads(model),
        "ramp_width": _ramp(model),
        "passed": float(passed),
    }
    if figure is not None:
        from icsim.analysis.construction_figures import plot_deep_gd

        result["figure"] = str(plot_deep_gd(result, figure))
    return result
