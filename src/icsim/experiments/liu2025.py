"""Liu, Zhou, Shen, Yang, ICLR 2025 (arXiv 2410.13981), "On the learn-to-optimize capabilities of
transformers in in-context sparse recovery" (PAPERS.md §9): a GPT-2 trained on in-context sparse
recovery beats ISTA/FISTA layer for step and, unlike LISTA trained for one fixed measurement
matrix, keeps working on new matrices and on other numbers of demonstrations.

What is measured. Every method recovers β* from N demonstrations (x_i, y_i = x_iᵀβ* + σε_i)
and is scored on Q fresh query rows x_q of the same prompt against the noiseless target x_qᵀβ*:

    NMSE (dB) = 10 log10( Σ (ŷ_q − x_qᵀβ*)² / Σ (x_qᵀβ*)² )  over prompts and queries.

For x_q ~ N(0, I) this is the recovery error ‖β̂ − β*‖² / ‖β*‖² in expectation, so a transformer
(which only predicts ŷ_q) and the solvers (which output β̂; ŷ_q = x_qᵀβ̂) are scored alike.
Per layer, the transformer's ŷ_q is a linear read-out of that layer's hidden state at the query
token, fitted by ridge on fresh training prompts (Fu et al. 2024's probes, `icsim.analysis.probes`).

The transformer (GPT-2 blocks, 8 heads) is trained by `train_transformer` on `sparse_recovery`
with a fresh Gaussian measurement matrix in every prompt and N drawn anew every step, so one model
serves every number of demonstrations. LISTA and LISTA-CP are trained
(`icsim.algorithms.sparse.fit`) for one fixed matrix X_A of N rows, as classical L2O needs.
The report (`liu2025.md`, filled by `report`) is a pure function of the config and scalars.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

import icsim
from icsim import _validate as V
from icsim.algorithms import sparse
from icsim.analysis.evaluation import in_chunks
from icsim.analysis.matching import fit_line
from icsim.analysis.metrics import first_step_at_or_below, nmse_db, nmse_db_interval
from icsim.analysis.plots import plot_curves
from icsim.analysis.probes import LayerProbes, fit_probes, layer_predictions
from icsim.analysis.report import Comparison, Curve, Finding, fill_beside, judge_all, markdown_table
from icsim.errors import InputError
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.models import ModelConfig, build
from icsim.models.formats import Stacked
from icsim.training.optim import Optim, OptimSettings

METHODS = ("transformer", "ista", "fista", "lista", "lista_cp", "lasso")
STEPPED = ("ista", "fista", "lista", "lista_cp")  # methods with a per-step curve


@dataclass(frozen=True, kw_only=True)
class TransformerConfig(OptimSettings):
    """The trained transformer (GPT-2 blocks: softmax attention, LayerNorm, GELU MLP) and its
    training run. Every step draws N ~ U{min_demos..max_demos} demonstrations and `n_queries`
    query rows per prompt, with a new measurement matrix and β* in every prompt. The optimiser
    settings (lr, schedule, ...) are `OptimSettings`' (Optim's defaults)."""

    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    steps: int = 500_000
    batch_size: int = 64
    n_queries: int = 8
    min_demos: int = 1
    max_demos: int = 40
    seed: int = 0
    amp: bool = False  # bf16 autocast, GPU only
    compile: bool = False  # torch.compile, GPU only
    log_every: int = 100

    def __post_init__(self):
        for name in ("n_layer", "n_head", "n_embd", "steps", "batch_size", "n_queries"):
            V.positive_int(name, getattr(self, name))
        V.positive_int("min_demos", self.min_demos)
        V.positive_int("max_demos", self.max_demos)
        if self.min_demos > self.max_demos:
            raise InputError(
                f"min_demos={self.min_demos} exceeds max_demos={self.max_demos}; "
                "set min_demos <= max_demos."
            )
        Optim.like(self)  # checks lr, betas, schedule, ... as every training run does


@dataclass(frozen=True)
class LiuConfig:
    """Task (d, s, σ), the transformer, LISTA and the evaluation. N = `n_demos` is the number of
    demonstrations of the main evaluation and the number of rows of LISTA's fixed matrix."""

    transformer: TransformerConfig
    dim: int = 20
    sparsity: int = 3
    noise_std: float = 0.0
    n_demos: int = 10
    lam: float = sparse.DEFAULT_LAM  # λ of ISTA, FISTA, LASSO and LISTA's initialisation
    algorithm_steps: int = 50  # ISTA/FISTA steps drawn on the per-step curves
    lista_layers: int | None = None  # K; None = the transformer's depth (layer for step)
    lista_steps: int = 2000
    lista_batch: int = 256
    lista_lr: float = 1e-3
    train_matrix_seed: int = 1  # X_A, LISTA's training matrix
    new_matrix_seed: int = 2  # X_B, an unseen matrix from the same ensemble
    correlated_rho: float = 0.5  # the other ensemble: rows ~ N(0, Σ_ρ), Σ_ρ = ρ^|i−j|
    fewer_demos: int = 5
    more_demos: int = 15
    shifted_sparsity: int = 4
    shifted_noise: float = 0.1
    # a second transformer trained on shared supports: its number of steps (None = as many as
    # the first; 0 = not trained)
    shared_support_steps: int | None = None
    n_supports: int = 4
    demo_counts: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
    probe_prompts: int = 4096
    probe_ridge: float = 1e-4
    eval_prompts: int = 1024
    eval_queries: int = 8
    eval_seed: int = 12345

    def __post_init__(self):
        for name in ("dim", "sparsity", "n_demos", "fewer_demos", "more_demos", "algorithm_steps"):
            V.positive_int(name, getattr(self, name))
        V.number("noise_std", self.noise_std, low=0)
        K = self.lista_layers or self.transformer.n_layer
        if K > self.algorithm_steps:
            raise InputError(
                f"ISTA/FISTA are compared after K = {K} steps but run for algorithm_steps="
                f"{self.algorithm_steps}; set algorithm_steps >= {K}."
            )


PROFILES = {
    # The paper: a GPT-2 backbone with 8 heads (PAPERS.md §9). Its d, N, s, σ and number of
    # training steps could not be verified (see the report's notes): Garg et al.'s GPT-2
    # (12 layers, width 256, batch 64, Adam 1e-4, 500k steps, up to 40 demonstrations) and
    # their sparse setting d = 20, s = 3 stand in; N = 10 < d demonstrations (compressed sensing).
    "full": LiuConfig(
        transformer=TransformerConfig(
            n_layer=12,
            n_embd=256,
            steps=500_000,
            batch_size=64,
            n_queries=16,
            min_demos=1,
            max_demos=40,
            lr=1e-4,
            log_every=500,
            amp=True,
            compile=True,
        ),
        dim=20,
        sparsity=3,
        n_demos=10,
        algorithm_steps=200,
        lista_steps=50_000,
        fewer_demos=5,
        more_demos=30,
        shifted_sparsity=4,
        demo_counts=tuple(range(2, 41, 2)),
        probe_prompts=16384,
        eval_prompts=1280,
        eval_queries=16,
    ),
    # 2 CPU cores, ≈ 15 min: d = 10, s = 2, N = 8 (< d), a 6-layer 8-head 64-wide model trained
    # on N in 2..16; the shared-support model gets a third of the steps (a conservative test).
    "quick": LiuConfig(
        transformer=TransformerConfig(
            n_layer=6,
            n_embd=64,
            steps=6000,
            batch_size=64,
            n_queries=8,
            min_demos=2,
            max_demos=16,
            lr=1e-3,
            warmup_steps=200,
            schedule="cosine",
        ),
        dim=10,
        sparsity=2,
        n_demos=8,
        fewer_demos=4,
        more_demos=14,
        shifted_sparsity=3,
        shared_support_steps=2000,
        demo_counts=(2, 4, 6, 8, 10, 12, 14, 16, 18, 20),
    ),
}

# PAPERS.md §9 states the findings but no numbers: every "paper" entry is a claim, in words.
PAPER = {
    "transformer_beats_ista_fista": "yes (trained transformers beat ISTA and FISTA)",
    "transformer_vs_lista_on_its_matrix": "competitive with LISTA-type methods trained for that X",
    "transformer_beats_lista_on_new_matrix": "yes (generalises to unseen measurement matrices)",
    "transformer_generalises_to_other_n": "yes (LISTA-type methods do not)",
    "shared_support_helps": "yes (improves when the support structure is shared)",
    "convergence_in_layers": "linear, rate improving with K (theory, LISTA-VM construction)",
    "numbers": "not reported in PAPERS.md",
}


# --------------------------------------------------------------------------------------------
# training the transformer
# --------------------------------------------------------------------------------------------


def train_transformer(tc: TransformerConfig, task, device, *, quiet=True, run_dir=None):
    """Train a GPT-2-block transformer on in-context sparse recovery; returns (model, log rows).

    Every prompt is `Stacked(d, n_queries=Q)`: tokens [x_i; y_i] and Q query tokens [x_q; 0]
    that attend to the demonstrations only (Q independent targets per prompt). N is drawn anew
    every step (from the seed's CPU stream, so the N sequence is the same on any device) and the
    model has no positional embedding, so it is invariant to the order of the demonstrations and
    one model serves every N. (The interleaved format, tried first, stayed on the predict-zero
    plateau for 2000+ steps at the quick profile's size.) Loss: mean squared error on the
    queries' (noisy) y_q."""
    from icsim.training import Run, Trainer, losses

    dev = torch.device(device)
    fmt = Stacked(dim=task.dim, n_queries=tc.n_queries)
    mc = ModelConfig(
        n_dims_in=fmt.width,
        n_layer=tc.n_layer,
        n_head=tc.n_head,
        n_embd=tc.n_embd,
        positional=False,
    )
    torch.manual_seed(tc.seed)
    model = build("transformer", mc).to(dev)
    demos = [0]  # N of the latest step, for the log rows

    def sample(step, rng):
        demos[0] = int(torch.randint(tc.min_demos, tc.max_demos + 1, (1,), generator=rng.cpu))
        return task.sample(tc.batch_size, demos[0] + tc.n_queries, generator=rng.device, device=dev)

    trainer = Trainer(
        model,
        fmt,
        sample=sample,
        loss=losses.mse_every_prefix(fmt),
        optim=Optim.like(tc),
        run=Run(
            dir=run_dir,
            log_every=tc.log_every,
            # one checkpoint kept: the trained model, or where a killed run resumes
            checkpoint_every=min(tc.steps, 10 * tc.log_every),
            keep_checkpoints=1,
            quiet=quiet,
            overwrite=True,
        ),
        seeds=(tc.seed,),
        device=dev,
        amp=tc.amp,
        compile=tc.compile,
        record=lambda k: {
            "model_kind": "transformer",
            "model_config": mc.to_dict(),
            "liu2025": asdict(tc),
        },
        log_extra=lambda step: {"demos": demos[0]},
    )
    trainer.train()
    model.eval()
    return model, trainer.history


# --------------------------------------------------------------------------------------------
# predictions of every method on the same prompts and queries: [steps + 1, B, Q]
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def transformer_predictions(model, batch, n_demos, probes: LayerProbes | None = None, chunk=512):
    """The model's prediction for the queries after the first `n_demos` points: [1, B, Q] from
    its own output, or [L+1, B, Q] through per-layer `probes`."""
    model.eval()
    fmt = Stacked(dim=batch.dim, n_queries=batch.n_points - n_demos)
    if probes is None:
        return in_chunks(lambda part: fmt.run(model, part).unsqueeze(0), batch, chunk, 1)
    return in_chunks(lambda part: layer_predictions(model, fmt, part, probes), batch, chunk, 1)


def noiseless_targets(batch, n_demos: int) -> torch.Tensor:
    """x_qᵀβ* [B, Q] of the queries after the first `n_demos` points."""
    return torch.einsum("bqd,bd->bq", batch.xs[:, n_demos:], batch.beta_star)


def algorithm_predictions(name, batch, n_demos, steps, lam):
    """ISTA / FISTA trajectories (steps 0..steps) or the LASSO minimiser ([1, B, Q])."""
    alg = icsim.algorithms.get(name, lam=lam)
    problem = batch.split(n_demos)
    return alg.run(problem, 0 if name == "lasso" else steps).predictions


@torch.no_grad()
def unrolled_predictions(net, batch, n_demos):
    """LISTA-type predictions after every layer [K+1, B, Q]. The network's weights are sized for
    its own N measurements and it never sees the prompt's X: with fewer demonstrations the
    missing measurements are read as 0, with more only the first N are used."""
    y = batch.ys[:, :n_demos].to(net.X.dtype)
    if n_demos < net.n:
        y = torch.cat([y, y.new_zeros(y.shape[0], net.n - n_demos)], 1)
    est = net(y[:, : net.n])  # [K+1, B, d]
    return torch.einsum("kbd,bqd->kbq", est, batch.xs[:, n_demos:].to(est.dtype))


def squared_errors(preds, batch, n_demos):
    """Per-prompt mean squared error of every step [S, B] and per-prompt signal power [B]."""
    target = noiseless_targets(batch, n_demos).double()
    err = (preds.double() - target).square().mean(-1)
    return err, target.square().mean(-1)


def db_curve(err, power, generator, x_label="layer / step") -> dict:
    """NMSE (dB) per row of err [S, B] with a bootstrap 95% band over prompts (metrics.json)."""
    y, low, high = (v.tolist() for v in nmse_db_interval(err, power, generator=generator))
    return Curve(list(range(err.shape[0])), y, x_label, "NMSE of x_qᵀβ̂ (dB)", low, high).to_json()


# --------------------------------------------------------------------------------------------
# the stages
# --------------------------------------------------------------------------------------------


def _task(base: dict, **changes):
    """A `sparse_recovery` task: the experiment's d, s, σ with `changes`."""
    return icsim.tasks.get("sparse_recovery", **{**base, **changes})


def settings(cfg: LiuConfig) -> dict:
    """Evaluation settings: name -> (task parameters beyond d, s, σ; N; what it tests). X_A is
    LISTA's training matrix."""
    N, rho = cfg.n_demos, cfg.correlated_rho

    def on_a(n, **kw):
        return {"ensemble": "fixed", "matrix_seed": cfg.train_matrix_seed, "fixed_rows": n, **kw}

    out = {
        "train_matrix": (on_a(N), N, "LISTA's training matrix X_A"),
        "new_matrix": (
            {"ensemble": "fixed", "matrix_seed": cfg.new_matrix_seed, "fixed_rows": N},
            N,
            "one unseen matrix X_B, same ensemble",
        ),
        "fresh_matrices": ({}, N, "a new Gaussian matrix in every prompt"),
        "correlated": (
            {"ensemble": "correlated", "rho": rho},
            N,
            f"other ensemble: correlated rows (ρ = {rho}), new every prompt",
        ),
        "fewer_demos": (on_a(cfg.fewer_demos), cfg.fewer_demos, f"X_A, N = {cfg.fewer_demos}"),
        "more_demos": (on_a(cfg.more_demos), cfg.more_demos, f"X_A, N = {cfg.more_demos}"),
        "higher_sparsity": (
            on_a(N, sparsity=cfg.shifted_sparsity),
            N,
            f"X_A, s = {cfg.shifted_sparsity}",
        ),
        "noisy": (on_a(N, noise_std=cfg.shifted_noise), N, f"X_A, σ = {cfg.shifted_noise}"),
    }
    if cfg.shared_support_steps != 0:
        out["shared_supports"] = (
            {"supports": "shared", "n_supports": cfg.n_supports},
            N,
            f"supports from a fixed set of {cfg.n_supports}, new matrix every prompt",
        )
    return out


def _train_lista(kind, X, task, cfg: LiuConfig, layers: int, seed: int):
    net = sparse.NETWORKS[kind](X, layers=layers, lam=cfg.lam)
    g = torch.Generator(device="cpu").manual_seed(seed)
    loss = sparse.fit(
        net, task, steps=cfg.lista_steps, batch_size=cfg.lista_batch, lr=cfg.lista_lr, generator=g
    )
    return net, loss[-1]


def train_models(cfg: LiuConfig, base: dict, device, out: Path, quiet: bool):
    """The transformer (uniform supports) and, if asked, one trained on shared supports, each
    with a new X every prompt: (models, training losses, seconds of the first)."""
    tc = cfg.transformer
    timer = time.perf_counter()
    model, losses = train_transformer(tc, _task(base), device, quiet=quiet, run_dir=out / "train")
    seconds = time.perf_counter() - timer
    models, hist = {"transformer": model}, {"transformer": losses}
    if cfg.shared_support_steps != 0:
        shared_tc = replace(tc, steps=cfg.shared_support_steps or tc.steps)
        shared_task = _task(base, supports="shared", n_supports=cfg.n_supports)
        models["transformer_shared"], hist["transformer_shared"] = train_transformer(
            shared_tc, shared_task, device, quiet=quiet, run_dir=out / "train_shared"
        )
    return models, hist, seconds


def evaluate(cfg: LiuConfig, task, n, models, nets, probes, generator, device) -> dict:
    """Every method on the same prompts and queries: {method: (err [S, B], power [B])}; with
    `probes`, also the transformer's per-layer read-outs ("transformer_layers")."""
    K_alg = cfg.algorithm_steps
    batch = task.sample(cfg.eval_prompts, n + cfg.eval_queries, generator=generator, device=device)
    preds = {name: transformer_predictions(m, batch, n).cpu() for name, m in models.items()}
    if probes is not None:
        preds["transformer_layers"] = transformer_predictions(
            models["transformer"], batch, n, probes
        ).cpu()
    # solvers in float64 on the CPU: LASSO's stopping test (iterate change <= 1e-12) is
    # never met in float32, which would run it to max_iter
    batch = batch.to("cpu", torch.float64)
    for name in ("ista", "fista", "lasso"):
        preds[name] = algorithm_predictions(name, batch, n, K_alg, cfg.lam)
    for kind, net in nets.items():
        preds[kind] = unrolled_predictions(net, batch, n)
    return {k: squared_errors(p, batch, n) for k, p in preds.items()}


def _at(method: str, K: int, L: int) -> int:
    """Which row of a method's errors is its result: LISTA-type after K layers, ISTA/FISTA after
    K steps (layer for step), the transformer's own output and LASSO have one row."""
    return {"ista": K, "fista": K, "lista": K, "lista_cp": K, "transformer_layers": L}.get(
        method, 0
    )


def measure(cfg: LiuConfig, base, models, nets, probes, g, device, K: int, L: int):
    """Every setting (the table), the per-step curves on X_A and X_B, and the error against the
    number of demonstrations on X_A: (scalars, curves)."""
    scalars, curves, gb = {}, {}, torch.Generator(device="cpu").manual_seed(cfg.eval_seed)
    for name, (params, n, _) in settings(cfg).items():
        per_layer = name in ("train_matrix", "new_matrix")
        errs = evaluate(
            cfg, _task(base, **params), n, models, nets, probes if per_layer else None, g, device
        )
        for method, (err, power) in errs.items():
            if method != "transformer_layers":
                scalars[f"{name}.{method}_db"] = nmse_db(err[_at(method, K, L)], power).item()
        if per_layer:
            suffix = "" if name == "train_matrix" else f"_{name}"
            label = "layer ℓ (linear read-out) / step k"
            curves[f"error_by_layer_transformer{suffix}"] = db_curve(
                *errs["transformer_layers"], gb, label
            )
            for m in STEPPED:
                curves[f"error_by_step_{m}{suffix}"] = db_curve(*errs[m], gb, x_label="step k")
    by_n = {m: [] for m in METHODS}
    for n in cfg.demo_counts:
        task = _task(base, ensemble="fixed", matrix_seed=cfg.train_matrix_seed, fixed_rows=n)
        errs = evaluate(cfg, task, n, {"transformer": models["transformer"]}, nets, None, g, device)
        for m in by_n:
            by_n[m].append(nmse_db(errs[m][0][_at(m, K, L)], errs[m][1]).item())
    x_label = f"demonstrations N (on X_A; LISTA trained at N = {cfg.n_demos})"
    for m, y in by_n.items():
        curves[f"error_vs_demos_{m}"] = Curve(
            list(cfg.demo_counts), y, x_label, f"NMSE (dB) after {K} layers / steps"
        ).to_json()
    return scalars, curves


def summary_scalars(cfg: LiuConfig, scalars: dict, curves: dict, K: int, L: int) -> dict:
    """Depth fits of the per-layer/per-step curves and the steps ISTA/FISTA need."""
    tl, layers = curves["error_by_layer_transformer"]["y"], list(range(1, L + 1))
    ista, fista = curves["error_by_step_ista"]["y"], curves["error_by_step_fista"]["y"]
    tf = scalars["train_matrix.transformer_db"]
    fit_tf = fit_line(layers, tl[1:])
    return {
        "transformer_db_slope_per_layer": fit_tf["slope"],
        "transformer_db_r2_linear_in_layer": fit_tf["r2"],
        "ista_db_slope_per_step": fit_line(layers, ista[1 : L + 1])["slope"],
        "fista_db_slope_per_step": fit_line(layers, fista[1 : L + 1])["slope"],
        "ista_steps_to_match_transformer": first_step_at_or_below(ista, tf),
        "fista_steps_to_match_transformer": first_step_at_or_below(fista, tf),
    }


def figures(cfg: LiuConfig, curves: dict, out: Path, K: int) -> list:
    d, N, tc, figs = cfg.dim, cfg.n_demos, cfg.transformer, []
    what = {name: s[2] for name, s in settings(cfg).items()}
    for setting in ("train_matrix", "new_matrix"):
        suffix = "" if setting == "train_matrix" else f"_{setting}"
        sel = {"transformer (per layer)": curves[f"error_by_layer_transformer{suffix}"]}
        sel.update({m: curves[f"error_by_step_{m}{suffix}"] for m in STEPPED})
        title = f"{what[setting]} (d = {d}, N = {N})"
        figs.append(plot_curves(sel, out / f"error_by_layer_{setting}.png", title=title))
    by_n = {m: curves[f"error_vs_demos_{m}"] for m in METHODS}
    title = f"other numbers of demonstrations (trained on N = {tc.min_demos}..{tc.max_demos})"
    figs.append(
        plot_curves(
            by_n, out / "error_vs_demonstrations.png", vline=N, vline_label="LISTA's N", title=title
        )
    )
    losses = {k[len("train_loss_") :]: v for k, v in curves.items() if k.startswith("train_")}
    figs.append(
        plot_curves(losses, out / "training_loss.png", logy=True, title="transformer training loss")
    )
    return figs


# --------------------------------------------------------------------------------------------
# the report: a pure function of (cfg, scalars)
# --------------------------------------------------------------------------------------------

CLAIMS = {  # the paper's claim for each evaluation setting (PAPERS.md §9), in words
    "train_matrix": "transformer beats ISTA/FISTA; competitive with LISTA-type on their own X",
    "new_matrix": "transformer generalises to unseen X; LISTA-type methods do not",
    "fresh_matrices": "transformer generalises to unseen X; LISTA-type methods do not",
    "correlated": "not stated in PAPERS.md (it claims unseen matrices, ensemble not given)",
    "fewer_demos": "transformer generalises across N; LISTA-type methods struggle or fail",
    "more_demos": "transformer generalises across N; LISTA-type methods struggle or fail",
    "higher_sparsity": "not stated in PAPERS.md",
    "noisy": "not stated in PAPERS.md",
    "shared_supports": "training on shared supports improves the transformer",
}
COMPETITIVE_DB = 3.0  # "competitive with LISTA": within 3 dB of it on its own matrix
OFF_X_A = ("new_matrix", "fresh_matrices", "correlated", "fewer_demos", "more_demos")


def _gaps(s) -> dict:
    """The best LISTA-type method off X_A; transformer − LISTA on X_A, − that best elsewhere, and
    the shared-support model's gain (dB): < 0 means the transformer wins."""
    gaps = {f"{k}.best_lista_db": min(s[f"{k}.lista_db"], s[f"{k}.lista_cp_db"]) for k in OFF_X_A}
    gaps["gap_train_matrix"] = s["train_matrix.transformer_db"] - s["train_matrix.lista_db"]
    for k in OFF_X_A:
        gaps[f"gap_{k}"] = s[f"{k}.transformer_db"] - gaps[f"{k}.best_lista_db"]
    if "shared_supports.transformer_shared_db" in s:
        gain = s["shared_supports.transformer_db"] - s["shared_supports.transformer_shared_db"]
        gaps["shared_gain"] = gain
    return gaps


def findings(cfg: LiuConfig) -> list[Finding]:
    """The paper's claims (PAPERS.md §9) and the criteria deciding whether this run shows them."""

    def below(*args, margin=0.0):  # ours < than + margin (dB)
        return Finding.below(*args, margin=margin, unit="dB")

    tf = "train_matrix.transformer_db"
    out = [
        below(
            f"beats_{a}",
            f"the transformer beats {a.upper()} layer for step on X_A",
            f"transformer after L layers below {a.upper()} after K steps",
            tf,
            f"train_matrix.{a}_db",
        )
        for a in ("ista", "fista")
    ]
    out.append(
        below(
            "competitive_with_lista",
            "the transformer is competitive with LISTA on LISTA's own matrix X_A",
            f"transformer within {COMPETITIVE_DB:g} dB of LISTA (or below it)",
            tf,
            "train_matrix.lista_db",
            margin=COMPETITIVE_DB + 1e-12,
        )
    )
    for k, label in (
        ("new_matrix", "one unseen matrix X_B"),
        ("fresh_matrices", "a new matrix every prompt"),
        ("fewer_demos", f"X_A with fewer demonstrations (N = {cfg.fewer_demos})"),
        ("more_demos", f"X_A with more demonstrations (N = {cfg.more_demos})"),
    ):
        out.append(
            below(
                f"generalises_{k}",
                f"the transformer beats LISTA and LISTA-CP on {label}",
                "transformer below both LISTA-type methods",
                f"{k}.transformer_db",
                f"{k}.best_lista_db",
            )
        )
    slope, r2 = "transformer_db_slope_per_layer", "transformer_db_r2_linear_in_layer"
    out.append(
        Finding(
            "linear_in_layers",
            "the transformer's error falls linearly (in dB) with depth",
            "slope of dB against layer < 0 and R² of the line ≥ 0.9",
            lambda s: s[slope] < 0 and s[r2] >= 0.9,
            lambda s: f"{s[slope]:.2f} dB/layer, R² = {s[r2]:.2f}",
        )
    )
    if cfg.shared_support_steps != 0:
        out.append(
            below(
                "shared_support_helps",
                "training on shared supports lowers the error on shared-support prompts",
                "the shared-support model's NMSE below the uniform model's",
                "shared_supports.transformer_shared_db",
                "shared_supports.transformer_db",
            )
        )
    return out


def comparisons(cfg: LiuConfig, K: int, L: int) -> list[Comparison]:
    beats, numbers = PAPER["transformer_beats_ista_fista"], PAPER["numbers"]
    rows = [
        Comparison(
            f"transformer NMSE (dB) on X_A, N = {cfg.n_demos}, {L} layers",
            "train_matrix.transformer_db",
            numbers,
            "NMSE of x_qᵀβ̂ against the noiseless x_qᵀβ*",
        ),
        Comparison(
            f"ISTA NMSE (dB) on X_A after {K} steps",
            "train_matrix.ista_db",
            beats,
            "layer for step",
        ),
        Comparison(
            f"FISTA NMSE (dB) on X_A after {K} steps",
            "train_matrix.fista_db",
            beats,
            "layer for step",
        ),
        Comparison(
            "ISTA / FISTA steps to reach the transformer's error",
            "steps_to_match",
            numbers,
            f"λ = {cfg.lam}, step 1/L",
        ),
        Comparison(
            "transformer − LISTA on LISTA's own X_A (dB)",
            "gap_train_matrix",
            PAPER["transformer_vs_lista_on_its_matrix"],
            f"K = {K}",
        ),
    ]
    for k, (_, n, what) in settings(cfg).items():
        if k in OFF_X_A:
            paper = CLAIMS[k] if k != "correlated" else "not reported separately (unseen matrices)"
            quantity = f"transformer − best of LISTA, LISTA-CP (dB): {what}, N = {n}"
            rows.append(Comparison(quantity, f"gap_{k}", paper))
    if cfg.shared_support_steps != 0:
        steps = f"{cfg.shared_support_steps or cfg.transformer.steps} vs {cfg.transformer.steps}"
        rows.append(
            Comparison(
                "shared-support training: dB gain on shared-support prompts",
                "shared_gain",
                PAPER["shared_support_helps"],
                f"{cfg.n_supports} supports; {steps} steps",
            )
        )
    rows.append(
        Comparison(
            "transformer's dB error against depth: slope per layer (dB)",
            "transformer_db_slope_per_layer",
            PAPER["convergence_in_layers"],
            "R²: see Findings",
        )
    )
    return rows


def _table(cfg: LiuConfig, s: dict, K: int, L: int) -> str:
    """The generalisation table (NMSE in dB, every setting × method) in markdown."""
    heads = {"transformer": f"transformer ({L} layers)"}
    if cfg.shared_support_steps != 0:
        heads["transformer_shared"] = "transformer, shared-support trained"
    heads |= {
        "ista": f"ISTA ({K} steps)",
        "fista": f"FISTA ({K} steps)",
        "lista": f"LISTA ({K} layers)",
    }
    heads |= {"lista_cp": f"LISTA-CP ({K} layers)", "lasso": "LASSO (converged)"}
    rows = [
        [f"{name}: {what} (N = {n})", *(f"{s[f'{name}.{m}_db']:.1f}" for m in heads), CLAIMS[name]]
        for name, (_, n, what) in settings(cfg).items()
    ]
    return markdown_table(["setting", *heads.values(), "paper's claim"], rows)


SHARED_LINE = (
    "- A second transformer, same architecture and settings, was trained for {steps} steps on "
    "supports drawn from a fixed set of {n} (the paper's shared structure); it is evaluated on "
    "such prompts (`shared_supports`) and, as a check of what it gave up, on the others."
)


def report(cfg: LiuConfig, scalars: dict) -> tuple[list, str]:
    """(comparison rows, notes) of the report, from the measured numbers alone."""
    t = cfg.transformer
    L, K = t.n_layer, cfg.lista_layers or t.n_layer
    s = {**scalars, **_gaps(scalars)}
    verdicts = judge_all(findings(cfg), s)
    more = [
        f"> {cfg.algorithm_steps}" if n > cfg.algorithm_steps else str(n)
        for n in (s["ista_steps_to_match_transformer"], s["fista_steps_to_match_transformer"])
    ]
    shared = SHARED_LINE.format(steps=cfg.shared_support_steps or t.steps, n=cfg.n_supports)
    text = {**asdict(cfg), **asdict(t), "L": L, "K": K, "steps_to_match": " / ".join(more)}
    text |= {
        "table": _table(cfg, s, K, L),
        "shared_line": shared if cfg.shared_support_steps else "",
    }
    text |= {k: f"{s[f'train_matrix.{k}_db']:.1f}" for k in ("transformer", "lista", "lasso")}
    values = {**s, **text}
    return [c.row(values) for c in comparisons(cfg, K, L)], fill_beside(__file__, values, verdicts)


# --------------------------------------------------------------------------------------------
# the experiment
# --------------------------------------------------------------------------------------------


@EXPERIMENTS.register("liu2025-sparse-l2o")
class Liu2025(Experiment):
    name = "liu2025-sparse-l2o"
    title = "In-context sparse recovery as learning-to-optimize (Liu et al. 2025)"
    cost = {"quick": "~10 min on 2 CPU cores", "full": "~8 GPU-hours"}
    citation = (
        "Liu, Zhou, Shen, Yang, *On the Learn-to-Optimize Capabilities of Transformers in "
        "In-Context Sparse Recovery*, ICLR 2025 (arXiv 2410.13981)"
    )
    profiles = PROFILES

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    smoke = {
        "transformer.steps": 2,
        "transformer.batch_size": 4,
        "transformer.log_every": 1,
        "lista_steps": 2,
        "lista_batch": 4,
        "probe_prompts": 64,
        "eval_prompts": 8,
    }

    def run(self, cfg: LiuConfig, out: Path, device: str, quiet: bool) -> Result:
        base = {"dim": cfg.dim, "sparsity": cfg.sparsity, "noise_std": cfg.noise_std}
        L = cfg.transformer.n_layer
        K = cfg.lista_layers or L
        models, losses, train_seconds = train_models(cfg, base, device, out, quiet)

        # LISTA / LISTA-CP for the fixed matrix X_A (N rows), trained on the CPU in float32
        N = cfg.n_demos
        lista_task = _task(base, ensemble="fixed", matrix_seed=cfg.train_matrix_seed, fixed_rows=N)
        X_A = lista_task.fixed_matrices(N)[0].float()
        nets, lista_loss = {}, {}
        for i, kind in enumerate(("lista", "lista_cp")):
            nets[kind], lista_loss[kind] = _train_lista(kind, X_A, lista_task, cfg, K, i)

        # per-layer read-outs at the queries after N demonstrations, on training prompts,
        # fitted to the noiseless x_qᵀβ*
        g = torch.Generator(device=device).manual_seed(cfg.eval_seed)
        probes = fit_probes(
            models["transformer"],
            Stacked(dim=cfg.dim, n_queries=cfg.eval_queries),
            _task(base),
            n_prompts=cfg.probe_prompts,
            n_points=N + cfg.eval_queries,
            generator=g,
            device=device,
            ridge=cfg.probe_ridge,
            target=lambda batch: noiseless_targets(batch, N),
        )
        scalars, curves = measure(cfg, base, models, nets, probes, g, device, K, L)
        for name, hist in losses.items():
            curves[f"train_loss_{name}"] = Curve.of_training(
                hist, "mean squared error on y_q"
            ).to_json()
        scalars |= {
            "dim": cfg.dim,
            "sparsity": cfg.sparsity,
            "n_demos": N,
            "layers": L,
            "lista_layers": K,
            "train_steps": cfg.transformer.steps,
            "train_seconds": train_seconds,
            "train_steps_per_second": cfg.transformer.steps / train_seconds,
            "final_train_loss": losses["transformer"][-1]["loss"],
            "lista_final_train_loss": lista_loss["lista"],
            "lista_cp_final_train_loss": lista_loss["lista_cp"],
        }
        if "transformer_shared" in losses:
            scalars["final_train_loss_shared"] = losses["transformer_shared"][-1]["loss"]
        scalars |= summary_scalars(cfg, scalars, curves, K, L)
        comparison, notes = report(cfg, scalars)
        return Result(curves, scalars, PAPER, figures(cfg, curves, out, K), comparison, notes=notes)
