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
The report (`liu2025.md`, filled by `liu2025_findings.report`) is a pure function of the numbers.
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
from icsim.analysis.report import Curve
from icsim.errors import InputError
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.experiments.liu2025_findings import PAPER, report, settings
from icsim.models import ModelConfig, build
from icsim.models.formats import Stacked
from icsim.training.settings import TransformerSettings

METHODS = ("transformer", "ista", "fista", "lista", "lista_cp", "lasso")
STEPPED = ("ista", "fista", "lista", "lista_cp")  # methods with a per-step curve


@dataclass(frozen=True, kw_only=True)
class TransformerConfig(TransformerSettings):
    """The trained transformer (GPT-2 blocks: softmax attention, LayerNorm, GELU MLP; the shape and
    training run of `TransformerSettings`, Garg et al.'s GPT-2) and what its prompts hold: every
    step draws N ~ U{min_demos..max_demos} demonstrations and `n_queries` query rows per prompt,
    with a new measurement matrix and β* in every prompt."""

    n_queries: int = 8
    min_demos: int = 1
    max_demos: int = 40

    def __post_init__(self):
        V.positive_fields(self, "n_queries", "min_demos", "max_demos")
        if self.min_demos > self.max_demos:
            raise InputError(
                f"min_demos={self.min_demos} exceeds max_demos={self.max_demos}; "
                "set min_demos <= max_demos."
            )
        super().__post_init__()


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
        V.positive_fields(
            self, "dim", "sparsity", "n_demos", "fewer_demos", "more_demos", "algorithm_steps"
        )
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
        transformer=TransformerConfig(n_layer=12, n_embd=256, steps=500_000, batch_size=64,
                                      n_queries=16, min_demos=1, max_demos=40, lr=1e-4,
                                      log_every=500, amp=True, compile=True),
        dim=20, sparsity=3, n_demos=10, algorithm_steps=200, lista_steps=50_000, fewer_demos=5,
        more_demos=30, shifted_sparsity=4, demo_counts=tuple(range(2, 41, 2)),
        probe_prompts=16384, eval_prompts=1280, eval_queries=16,
    ),
    # 2 CPU cores, ≈ 15 min: d = 10, s = 2, N = 8 (< d), a 6-layer 8-head 64-wide model trained
    # on N in 2..16; the shared-support model gets a third of the steps (a conservative test).
    "quick": LiuConfig(
        transformer=TransformerConfig(n_layer=6, n_embd=64, steps=6000, batch_size=64,
                                      n_queries=8, min_demos=2, max_demos=16, lr=1e-3,
                                      warmup_steps=200, schedule="cosine"),
        dim=10, sparsity=2, n_demos=8, fewer_demos=4, more_demos=14, shifted_sparsity=3,
        shared_support_steps=2000, demo_counts=(2, 4, 6, 8, 10, 12, 14, 16, 18, 20),
    ),
}  # fmt: skip

# --- training the transformer ---------------------------------------------------------------------


def train_transformer(tc: TransformerConfig, task, device, *, quiet=True, run_dir=None):
    """Train a GPT-2-block transformer on in-context sparse recovery; returns (model, log rows).

    Every prompt is `Stacked(d, n_queries=Q)`: tokens [x_i; y_i] and Q query tokens [x_q; 0]
    that attend to the demonstrations only (Q independent targets per prompt). N is drawn anew
    every step (from the seed's CPU stream, so the N sequence is the same on any device) and the
    model has no positional embedding, so it is invariant to the order of the demonstrations and
    one model serves every N. (The interleaved format, tried first, stayed on the predict-zero
    plateau for 2000+ steps at the quick profile's size.) Loss: mean squared error on the
    queries' (noisy) y_q."""
    from icsim.training import Trainer, losses

    dev = torch.device(device)
    fmt = Stacked(dim=task.dim, n_queries=tc.n_queries)
    mc = ModelConfig(n_dims_in=fmt.width, n_layer=tc.n_layer, n_head=tc.n_head, n_embd=tc.n_embd,
                     positional=False)  # fmt: skip
    torch.manual_seed(tc.seed)
    model = build("transformer", mc).to(dev)
    demos = [0]  # N of the latest step, for the log rows

    def sample(step, rng):
        demos[0] = int(torch.randint(tc.min_demos, tc.max_demos + 1, (1,), generator=rng.cpu))
        return task.sample(tc.batch_size, demos[0] + tc.n_queries, generator=rng.device, device=dev)

    record = {"model_kind": "transformer", "model_config": mc.to_dict(), "liu2025": asdict(tc)}
    trainer = Trainer(model, fmt, sample=sample, loss=losses.mse_every_prefix(fmt),
                      optim=tc.optim(), run=tc.run(run_dir, quiet=quiet, overwrite=True),
                      seeds=(tc.seed,), device=dev, amp=tc.amp,
                      compile=tc.compile, record=lambda k: record,
                      log_extra=lambda step: {"demos": demos[0]})  # fmt: skip
    trainer.train()
    model.eval()
    return model, trainer.history


# --- predictions of every method on the same prompts and queries: [steps + 1, B, Q] ---------------


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


# --- the stages -----------------------------------------------------------------------------------


def _task(base: dict, **changes):
    """A `sparse_recovery` task: the experiment's d, s, σ with `changes`."""
    return icsim.tasks.get("sparse_recovery", **{**base, **changes})


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
    return {**dict.fromkeys(STEPPED, K), "transformer_layers": L}.get(method, 0)


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
    path, lines = out / "error_vs_demonstrations.png", dict(vline=N, vline_label="LISTA's N")
    figs.append(plot_curves(by_n, path, **lines, title=title))
    losses = {k[len("train_loss_") :]: v for k, v in curves.items() if k.startswith("train_")}
    title = "transformer training loss"
    figs.append(plot_curves(losses, out / "training_loss.png", logy=True, title=title))
    return figs


# --- the experiment -------------------------------------------------------------------------------


@EXPERIMENTS.register("liu2025-sparse-l2o")
class Liu2025(Experiment):
    """In-context sparse recovery as learning-to-optimize (Liu et al. 2025)

    Liu, Zhou, Shen, Yang, *On the Learn-to-Optimize Capabilities of Transformers in In-Context
    Sparse Recovery*, ICLR 2025 (arXiv 2410.13981)"""

    cost = {"quick": "~10 min on 2 CPU cores", "full": "~8 GPU-hours"}
    profiles = PROFILES

    # `--profile full --smoke`: evaluation sizes and LISTA's training cut to the minimum (each
    # TrainConfig and RunSettings is cut by experiments.base.smoke_cuts); shapes stay.
    smoke = {
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
        fmt = Stacked(dim=cfg.dim, n_queries=cfg.eval_queries)
        probes = fit_probes(models["transformer"], fmt, _task(base), n_prompts=cfg.probe_prompts,
                            n_points=N + cfg.eval_queries, generator=g, device=device,
                            target=lambda b: noiseless_targets(b, N),
                            ridge=cfg.probe_ridge)  # fmt: skip
        scalars, curves = measure(cfg, base, models, nets, probes, g, device, K, L)
        for name, hist in losses.items():
            curve = Curve.of_training(hist, "mean squared error on y_q")
            curves[f"train_loss_{name}"] = curve.to_json()
        steps = cfg.transformer.steps
        scalars |= {
            "dim": cfg.dim, "sparsity": cfg.sparsity, "n_demos": N, "layers": L, "lista_layers": K,
            "train_steps": steps, "train_seconds": train_seconds,
            "train_steps_per_second": steps / train_seconds,
            "final_train_loss": losses["transformer"][-1]["loss"],
            "lista_final_train_loss": lista_loss["lista"],
            "lista_cp_final_train_loss": lista_loss["lista_cp"],
        }  # fmt: skip
        if "transformer_shared" in losses:
            scalars["final_train_loss_shared"] = losses["transformer_shared"][-1]["loss"]
        scalars |= summary_scalars(cfg, scalars, curves, K, L)
        comparison, notes = report(cfg, scalars)
        return Result(curves, scalars, PAPER, figures(cfg, curves, out, K), comparison, notes=notes)
