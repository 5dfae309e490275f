"""T steps of soft EM (known σ, fixed weights π) by softmax attention, exactly (He et al. 2025;
PAPERS.md §7).

Tokens: `EMTokens` (points, then one token per centre). The E-step is one softmax head whose
query is the point, keys the centres with bias −‖μ_k‖²/2 + σ² log π_k, temperature 1/σ²:

    softmax_k((x_iᵀμ_k − ‖μ_k‖²/2 + σ² log π_k)/σ²) = softmax_k(log π_k − ‖x_i − μ_k‖²/2σ²) = γ_ik,

(−‖x_i‖²/2σ² is the same for every k); the head's log-normaliser lse_i is kept (`LSEAttention`).
The M-step is one softmax head whose query is the centre, keys the points:
softmax_i(x_iᵀμ_k/σ² − lse_i) = γ_ik / Σ_j γ_jk (the centre's own bias is constant over i),
values x_i, so it returns μ_k⁺ = Σ_i γ_ik x_i / Σ_i γ_ik. ‖μ_k⁺‖² is formed by an element-wise
multiplication layer (`icsim.models.ewml.EWML`), and a ReLU MLP moves μ⁺ into μ and clears the
scratch (relu(z) − relu(−z) = z).

Layers: 2 + 4T: [EWML: c = −‖μ⁽⁰⁾‖²/2, E-step], then per step [M-step, MLP, EWML, E-step];
hidden[2 + 4t] holds μ⁽ᵗ⁾ (centre tokens) and γ⁽ᵗ⁾ (point tokens); the read-out gives γ⁽ᵀ⁾.
One head per attention layer, head dim max(d + 1, K); width 3d + 2K + 4.
Reference: `soft_em(variance="known", sigma=σ, initialization="given")` with π fixed (its
default M-step normalises γ over the points in log space, as this head does): equal up to
rounding.

Lloyd's algorithm is the σ → 0 limit: at finite σ a point's responsibilities differ from
Lloyd's one-hot label by at most (K − 1)·exp(−g_i/2σ²) in each entry, g_i = ‖x_i − μ_(2)‖² −
‖x_i − μ_(1)‖² its margin between the two nearest centres, so the centres differ from Lloyd's
by O(exp(−g_min/2σ²)) per step, plus the rounding of scores of size ‖x‖‖μ‖/σ², which grows as
σ → 0 (about 1e-9 at σ = 0.05 with ‖x‖ ~ 10; tests/constructions/test_em_step.py).
"""

from __future__ import annotations

import math

import torch

from icsim import _validate as V
from icsim.constructions.base import CONSTRUCTIONS, Check, ConstructionInfo, in_dtype, put, rows
from icsim.models.clustering_formats import EMTokens
from icsim.models.ewml import EWMLConfig, LayerSpec
from icsim.models.transformer import zeroed

HE = "He, Chen, Cao, Fan, Liu 2025, Transformers versus the EM algorithm in multi-class clustering"


class EMCheck(Check):
    """`gmm_clustering` prompts (K clusters, n = 20 points by default; condition number κ > 1
    makes the clusters anisotropic), EM started at the true centres moved by half the minimum
    separation (the same start for model and algorithm); compared: the centres and the
    responsibilities after every step."""

    task = "gmm_clustering"
    fixed_task_params = ("dim", "n_clusters", "covariance", "condition_number")
    defaults = {"steps": 3, "dim": 5, "n_problems": 1000}

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        kappa = task_params.pop("condition_number", 1)
        n = 20 if n_context is None else n_context
        task = self.make_task(
            info,
            n_clusters=fmt.n_clusters,
            covariance="isotropic" if kappa == 1 else "anisotropic",
            condition_number=kappa,
            **task_params,
        )
        batch = task.sample(n_problems, n, generator=generator, dtype=torch.float64)
        xi = torch.randn(batch.mu.shape, generator=generator, dtype=torch.float64)
        start = batch.mu + 0.5 * batch.separation[:, None, None] * xi / math.sqrt(info.dim)
        return batch, start, fmt

    def reference(self, info, problems):
        from icsim.algorithms import get as get_algorithm
        from icsim.algorithms.clustering import clustering_problem

        batch, start, fmt = problems
        em = get_algorithm("soft_em", **info.hyperparameters)
        p = clustering_problem(batch, centres0=start)
        pi = fmt.log_weights(torch.float64, "cpu").exp().expand(batch.batch_size, -1)
        traj = em.run(p._replace(weights=pi), info.steps)
        return torch.cat([traj.iterates.flatten(2), traj.responsibilities.flatten(2)], -1)

    def model_steps(self, model, fmt, problems, dtype):
        batch, start, _ = problems
        batch, model = batch.to(dtype=dtype), in_dtype(model, dtype)
        with torch.no_grad():
            _, hidden = fmt.run(model, batch, start.to(dtype), return_hidden=True)
        h = hidden[model.construction.step_blocks]
        n, mask = batch.n_points, batch.mask[..., None]
        return torch.cat([fmt.centres(h, n).flatten(2), (fmt.gamma(h, n) * mask).flatten(2)], -1)


@CONSTRUCTIONS.register("em_step", check=EMCheck)
def em_step(
    dim: int = 5,
    steps: int = 1,
    n_clusters: int = 3,
    sigma: float = 1.0,
    weights: tuple | None = None,
):
    """T soft-EM steps (known σ, fixed π; uniform when `weights` is None) in 2 + 4T layers of
    softmax attention, ReLU MLP and element-wise multiplication (see the module docstring).
    Returns (model, EMTokens); `fmt.run(model, batch, centres0)` -> γ⁽ᵀ⁾ [B, n, K]."""
    d, T = V.positive_int("dim", dim), V.positive_int("steps", steps)
    K = n_clusters
    if isinstance(K, bool) or not isinstance(K, int) or K < 2:
        raise V.InputError(f"n_clusters must be an integer >= 2, got {n_clusters!r}.")
    s2 = V.number("sigma", sigma, low=0, low_open=True) ** 2
    if weights is not None:
        weights = tuple(V.number("weights", float(w), low=0, low_open=True) for w in weights)
        if len(weights) != K or abs(sum(weights) - 1) > 1e-9:
            raise V.InputError(f"weights must be {K} positive numbers summing to 1, got {weights}.")
    fmt = EMTokens(d, K, sigma, weights)
    L, hd = fmt.layout, max(d + 1, K)
    cleared = (L.mu_new, L.mu, L.gamma, L.lse, L.c)
    n_move = sum(s.stop - s.start for s in cleared)
    ewml = LayerSpec("ewml", hidden=d)
    attn = LayerSpec("attention", n_head=1, head_dim=hd)
    mlp = LayerSpec("mlp", hidden=2 * n_move)
    layers = [ewml, attn] + [attn, mlp, ewml, attn] * T
    cfg = EWMLConfig(n_embd=L.width, layers=tuple(layers), n_dims_out=K, attention="softmax")
    model = zeroed("lse_transformer", cfg)
    scale = math.sqrt(hd)  # cancels the attention's 1/√hd
    one = slice(L.one.start, L.one.start + 1)
    with torch.no_grad():
        for i, (spec, layer) in enumerate(zip(cfg.layers, model.layers)):
            if spec.kind == "ewml":  # c += −½ Σ_j μ_j²
                put(layer.a.weight, rows(0, d), L.mu)
                put(layer.b.weight, rows(0, d), L.mu)
                layer.proj.weight[L.c, :] = -0.5
            elif spec.kind == "mlp":  # μ ← μ_new; μ_new, γ, lse, c ← 0
                W1, W2, start = layer.mlp.fc.weight, layer.mlp.proj.weight, 0
                for s in cleared:
                    size = s.stop - s.start
                    put(W1, rows(start, size), s)
                    put(W1, rows(start + n_move, size), s, -1.0)
                    put(W2, s, rows(start, size), -1.0)
                    put(W2, s, rows(start + n_move, size), 1.0)
                    start += size
                put(W2, L.mu, rows(0, d), 1.0)  # + μ_new into μ (μ_new is cleared[0])
                put(W2, L.mu, rows(n_move, d), -1.0)
            elif (i - 2) % 4 == 0 and i >= 2:  # M-step: centre k over the points
                put(layer.q.weight, rows(0, d), L.mu, scale / s2)
                put(layer.q.weight, rows(d, 1), one, -scale)
                put(layer.k.weight, rows(0, d), L.x)
                put(layer.k.weight, rows(d, 1), L.lse)
                put(layer.v.weight, rows(0, d), L.x)
                put(layer.proj.weight, L.mu_new, rows(0, d))
            else:  # E-step: point i over the centres
                put(layer.q.weight, rows(0, d), L.x, scale / s2)
                put(layer.q.weight, rows(d, 1), one, scale / s2)
                put(layer.k.weight, rows(0, d), L.mu)
                put(layer.k.weight, rows(d, 1), L.c)
                put(layer.k.weight, rows(d, 1), L.b)
                put(layer.v.weight, rows(0, K), L.e)
                put(layer.proj.weight, L.gamma, rows(0, K))
                layer.lse_proj.weight[L.lse, 0] = 1.0
        put(model.read_out.weight, rows(0, K), L.gamma)
    model.construction = ConstructionInfo(
        name="em_step",
        citation=HE + " (E- and M-step by softmax attention, PAPERS.md §7)",
        algorithm="soft_em",
        hyperparameters={"variance": "known", "sigma": float(sigma), "initialization": "given"},
        steps=T,
        dim=d,
        layers=2 + 4 * T,
        heads=1,
        width=L.width,
        head_dim=hd,
        layers_per_step=4,
        block_offset=2,
        formulas={
            "layers": "2 + 4T (per step: M-step, MLP, EWML, E-step)",
            "heads": "1",
            "width": "3d + 2K + 4",
            "head_dim": "max(d + 1, K)",
        },
    )
    return model.eval(), fmt
