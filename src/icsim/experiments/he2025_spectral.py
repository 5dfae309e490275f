"""He, Cao, Chen, Wu, Fan, Liu 2025, "Learning spectral methods by transformers" (arXiv
2501.01312): transformers trained to output the top-k eigenpairs of a prompt's sample covariance,
against the power method at equal iterations, per layer, across d and attention kinds, on
scikit-learn's bundled digits, and two-class spectral clustering against Lloyd."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from icsim import algorithms, tasks
from icsim.analysis.plots import plot_curves
from icsim.analysis.probes import hidden_at_predictions
from icsim.analysis.report import Curve
from icsim.analysis.spectral_metrics import (
    abs_cosine,
    eigenvalue_relative_error,
    misclustering_up_to_sign,
)
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.experiments.he2025_spectral_findings import PAPER, headline, report  # noqa: F401
from icsim.models import ModelConfig, Transformer
from icsim.models.clustering_formats import PointTokens
from icsim.models.spectral_formats import PCAQueries
from icsim.tasks.base import TaskBatch
from icsim.tasks.pca import top_eigenpairs
from icsim.training.settings import TransformerSettings
from icsim.training.trainer import resolve_device

# One transformer per (attention, d): AdamW at lr 1e-3, cosine decay, on fresh prompts; its
# `seed` seeds the weights and the training prompts, `HeConfig.seed` the evaluation.
QUICK_TRAIN = TransformerSettings(
    n_layer=4, n_head=2, n_embd=64, steps=1500, lr=1e-3, schedule="cosine"  # the paper: 2–8 heads
)  # fmt: skip


@dataclass(frozen=True)
class HeConfig:
    train: TransformerSettings
    dims: tuple[int, ...] = (5, 10)  # ReLU models at every d; softmax at dims[0]
    k: int = 2
    n_points: int = 20  # N points per prompt
    gap: float = 1.0  # the pca task's planted gap
    attentions: tuple[str, ...] = ("relu", "softmax")
    power_iterations: int = 12  # τ = 1..T on the power-method curve
    eval_prompts: int = 1024
    probe_prompts: int = 2048
    probe_ridge: float = 1e-3
    separations: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
    cluster_points: int = 40
    cluster_steps: int = 1000  # the clustering transformer's training steps (same settings)
    construction_pieces: tuple[int, ...] = (32, 64, 128, 256)  # W of the 1/‖Σv‖ interpolant
    construction_steps: int = 5  # τ per vector
    construction_problems: int = 64
    seed: int = 0


PROFILES = {
    # The paper's sizes: d up to ~50, k up to ~5, deeper models (their exact grids unverified).
    "full": HeConfig(
        train=replace(QUICK_TRAIN, n_layer=8, n_head=8, n_embd=256, steps=50_000, batch_size=128),
        dims=(10, 20, 50), k=3, n_points=100, power_iterations=20,
        eval_prompts=4096, probe_prompts=8192, cluster_steps=20_000,
    ),
    # 2 CPU cores, minutes: d = 5 and 10, k = 2, N = 20, 4 layers of width 64.
    "quick": HeConfig(train=QUICK_TRAIN),
}  # fmt: skip


def pca_task(cfg: HeConfig, d: int):
    return tasks.get("pca", dim=d, k=cfg.k, gap=cfg.gap)


def train_model(cfg: HeConfig, d: int, attention: str, device, out: Path, say):
    """A transformer trained on `sign_free_eigenpairs` through the one Trainer."""
    from icsim.training import Trainer, losses

    t, fmt_ = cfg.train, PCAQueries(d, cfg.k)
    torch.manual_seed(t.seed + d)
    model = Transformer(
        ModelConfig(
            n_dims_in=fmt_.width, n_dims_out=fmt_.n_out, n_layer=t.n_layer, n_head=t.n_head,
            n_embd=t.n_embd, attention=attention, positional=False, causal=False,
        )
    ).to(device)  # fmt: skip
    task = pca_task(cfg, d)

    def sample(step, rng):
        return task.sample(t.batch_size, cfg.n_points, generator=rng.device, device=device)

    def progress(row):
        say(f"{attention} d={d}: step {row['step']}/{t.steps} loss {row['loss']:.3g}")

    trainer = Trainer(
        model, fmt_, sample=sample, loss=losses.sign_free_eigenpairs(fmt_), optim=t.optim(),
        run=t.run(out / f"train-{attention}-d{d}", checkpoint_every=t.steps, quiet=True),
        seeds=(t.seed + d,), device=device, on_log=progress,
    )  # fmt: skip
    trainer.train()
    return model.eval(), fmt_, trainer.history


def eigen_scores(vectors: torch.Tensor, values: torch.Tensor, batch: TaskBatch) -> dict:
    """Per-prompt |cos| per vector [B, k] and eigenvalue relative error [B, k]."""
    return {
        "cos": abs_cosine(vectors, batch.eigenvectors),
        "value_error": eigenvalue_relative_error(values, batch.eigenvalues),
    }


@torch.no_grad()
def model_scores(model, fmt_, batch: TaskBatch) -> dict:
    out = fmt_.run(model, batch).double()  # [B, k, d + 1]
    return eigen_scores(out[..., :-1].transpose(1, 2), out[..., -1], batch.to(dtype=torch.float64))


@torch.no_grad()
def cos_by_layer(model, fmt_, cfg: HeConfig, d: int, batch: TaskBatch, device) -> torch.Tensor:
    """Mean |cos| [L+1] of a ridge read-out fitted per layer on fresh prompts (analysis.probes'
    fit_probes fits one scalar per position; an eigenvector is d numbers, so the same closed-form
    ridge is solved here with d + 1 outputs). The targets are the true eigenvectors with the sign
    the model's own output chose: its loss is sign-free, so it holds ±v, and a linear read-out
    cannot reproduce the targets' sign convention (largest entry positive), a nonlinear one."""
    g = torch.Generator(device=device).manual_seed(cfg.seed + 7)
    train = pca_task(cfg, d).sample(cfg.probe_prompts, cfg.n_points, generator=g, device=device)

    def features(b):
        h = hidden_at_predictions(model, fmt_, b).double()  # [L+1, B, k, E]
        return torch.cat([h, h.new_ones(*h.shape[:-1], 1)], -1).flatten(1, 2)

    y, out = fmt_.targets(train).double(), fmt_.run(model, train).double()  # [B, k, d+1] both
    sign = torch.where((out[..., :-1] * y[..., :-1]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    y = torch.cat([y[..., :-1] * sign, y[..., -1:]], -1).flatten(0, 1)  # [Bk, d+1]
    f = features(train)  # [L+1, Bk, E+1]
    reg = cfg.probe_ridge * f.shape[1] * torch.eye(f.shape[-1], dtype=f.dtype, device=f.device)
    w = torch.linalg.solve(f.transpose(1, 2) @ f + reg, f.transpose(1, 2) @ y)
    pred = (features(batch) @ w).unflatten(1, (batch.batch_size, cfg.k))  # [L+1, B, k, d+1]
    truth = batch.eigenvectors.double()
    return torch.stack([abs_cosine(p[..., :-1].transpose(1, 2), truth).mean() for p in pred])


def power_curve(batch: TaskBatch, cfg: HeConfig) -> torch.Tensor:
    """|cos| [T+1, B, k] of the power method with τ = 0..T iterations per vector."""
    b = batch.to(dtype=torch.float64)
    rows = []
    for tau in range(1, cfg.power_iterations + 1):
        traj = algorithms.get("power_method", k=cfg.k, iterations=tau, seed=cfg.seed).run(b)
        rows.append(abs_cosine(traj.iterates[-1], b.eigenvectors))
    start = algorithms.get("power_method", k=cfg.k, seed=cfg.seed).run(b, steps=0).iterates[0]
    return torch.stack([abs_cosine(start, b.eigenvectors), *rows])


def digits_batch(cfg: HeConfig, d: int, n_prompts: int, device) -> TaskBatch:
    """Prompts of N images of scikit-learn's bundled 8×8 digits (no download): pixels centred by
    the dataset mean, projected on a fixed random orthonormal d-frame, each prompt scaled so the
    trace of its sample covariance equals the synthetic training prompts' expected trace."""
    from sklearn.datasets import load_digits

    pixels = torch.tensor(load_digits().data, dtype=torch.float64, device=device)
    pixels = pixels - pixels.mean(0)
    g = torch.Generator(device=device).manual_seed(cfg.seed + 11)
    q = torch.linalg.qr(torch.randn(64, d, generator=g, device=device, dtype=torch.float64))[0]
    idx = torch.randint(pixels.shape[0], (n_prompts, cfg.n_points), generator=g, device=device)
    xs = pixels[idx] @ q
    target_trace = float(pca_task(cfg, d).population_spectrum(device).sum())
    trace = xs.square().sum((1, 2)) / cfg.n_points
    xs = xs * (target_trace / trace).sqrt()[:, None, None]
    lam, vec = top_eigenpairs(xs.transpose(1, 2) @ xs / cfg.n_points, cfg.k)
    truth = {"eigenvectors": vec.float(), "eigenvalues": lam.float()}
    return TaskBatch(xs=xs.float(), ys=xs.new_zeros(xs.shape[:2]).float(), task="pca", truth=truth)


def train_cluster_model(cfg: HeConfig, device, out: Path, say):
    """A ReLU-attention transformer labelling every point of two-class prompts (`points` tokens,
    2 logits per point), trained through the one Trainer on the separations in turn, with the
    per-point cross-entropy under the better of the two namings of the classes (the minimum over
    the global sign: labels are defined up to it), `losses.cross_entropy_matched`."""
    from icsim.analysis.clustering_metrics import matched_targets
    from icsim.training import Trainer, losses

    t, d = replace(cfg.train, steps=cfg.cluster_steps), cfg.dims[0]
    fmt_ = PointTokens(d)
    torch.manual_seed(t.seed + 17)
    model = Transformer(
        ModelConfig(
            n_dims_in=d, n_dims_out=2, n_layer=t.n_layer, n_head=t.n_head, n_embd=t.n_embd,
            attention="relu", positional=False, causal=False,
        )
    ).to(device)  # fmt: skip
    by_sep = [tasks.get("spectral_clustering", dim=d, separation=s) for s in cfg.separations]

    def sample(step, rng):
        task = by_sep[step % len(by_sep)]
        return task.sample(t.batch_size, cfg.cluster_points, generator=rng.device, device=device)

    def match(logp, batch):
        return matched_targets(logp, (batch.labels > 0).long())

    trainer = Trainer(
        model, fmt_, sample=sample, loss=losses.cross_entropy_matched(fmt_, match),
        optim=t.optim(),
        run=t.run(out / "train-clustering", checkpoint_every=t.steps, quiet=True),
        seeds=(t.seed + 17,), device=device,
        on_log=lambda row: say(f"clustering: step {row['step']}/{t.steps} loss {row['loss']:.3g}"),
    )  # fmt: skip
    trainer.train()
    return model.eval(), trainer.history


@torch.no_grad()
def clustering(cfg: HeConfig, device, model=None) -> dict:
    """Mean misclustering against separation: the spectral algorithm, Lloyd's algorithm where the
    clustering module registers it, and a trained transformer (`model`) when given."""
    curves = {}
    spectral = algorithms.get("spectral_clustering")
    solvers = {"spectral_clustering": lambda b: spectral.run(b).predictions[-1]}
    if "lloyd" in algorithms.names():  # the clustering issue's solver, once merged
        from icsim.algorithms.clustering import clustering_problem

        lloyd = algorithms.get("lloyd")  # two centres (the truth holds one μ, not K centres),
        solvers["lloyd"] = lambda b: lloyd.run(  # as many steps as the spectral algorithm's
            clustering_problem(b, n_clusters=2), steps=spectral.iterations
        ).predictions[-1]
    g = torch.Generator(device=device).manual_seed(cfg.seed + 13)
    rows = {n: [] for n in [*solvers, *(["transformer"] if model is not None else [])]}
    for sep in cfg.separations:
        task = tasks.get("spectral_clustering", dim=cfg.dims[0], separation=sep)
        b = task.sample(cfg.eval_prompts, cfg.cluster_points, generator=g, device=device)
        for n, solve in solvers.items():
            labels = solve(b)
            pred = torch.where(labels == labels[:, :1], 1.0, -1.0)  # any two-label coding -> ±1
            rows[n].append(misclustering_up_to_sign(pred, b.labels))
        if model is not None:
            logits = PointTokens(cfg.dims[0]).run(model, b)
            pred = torch.where(logits[..., 1] > logits[..., 0], 1.0, -1.0)
            rows["transformer"].append(misclustering_up_to_sign(pred, b.labels))
    for n, per_sep in rows.items():
        key = "misclustering_vs_separation_transformer" if n == "transformer" else None
        curves[key or f"misclustering_{n}"] = Curve.of_prompts(
            torch.stack(per_sep, 1), cfg.separations, "separation ‖2μ‖ (noise σ = 1)",
            "misclustering",
        ).to_json()  # fmt: skip
    return curves


def cluster_scalars(curves: dict) -> dict:
    """Misclustering averaged over the separations, per method."""
    names = {"misclustering_spectral_clustering": "spectral", "misclustering_lloyd": "lloyd",
             "misclustering_vs_separation_transformer": "transformer"}  # fmt: skip
    return {
        f"cluster_{short}_misclustering": sum(curves[k]["y"]) / len(curves[k]["y"])
        for k, short in names.items()
        if k in curves
    }


@EXPERIMENTS.register("he2025-spectral")
class He2025Spectral(Experiment):
    """Spectral methods in transformers (He et al. 2025): PCA and spectral clustering

    He, Cao, Chen, Wu, Fan, Liu, *Learning Spectral Methods by Transformers*, arXiv 2501.01312
    (2025)"""

    cost = {
        "quick": "~8 min on 2 idle CPU cores (349 s measured before the clustering transformer, "
        "which adds 1000 steps); 1572 s measured at load 14-15, one thread (2026-12-02)",
        "full": "a GPU: d up to ~50 (not yet measured)",
    }
    profiles = PROFILES

    # `--profile full --smoke`: training and evaluation cut to the minimum; shapes stay.
    smoke = {
        "eval_prompts": 8, "cluster_steps": 2, "probe_prompts": 16, "power_iterations": 2,
        "separations": (2.0,), "dims": (10,), "construction_pieces": (16,),
        "construction_problems": 2,
    }  # fmt: skip

    def run(self, cfg: HeConfig, out: Path, device: str, quiet: bool) -> Result:
        def say(msg):
            if not quiet:
                print(f"he2025-spectral: {msg}", file=sys.stderr, flush=True)

        dev, L = resolve_device(device), cfg.train.n_layer
        curves, scalars = {}, {"dim": cfg.dims[0], "k": cfg.k, "n_layer": L}
        g = torch.Generator(device=dev).manual_seed(cfg.seed + 1)
        for d in cfg.dims:
            batch = pca_task(cfg, d).sample(cfg.eval_prompts, cfg.n_points, generator=g, device=dev)
            power = power_curve(batch, cfg)  # [T+1, B, k]
            tau = min(L, cfg.power_iterations)
            put(scalars, f"power_d{d}_at_L", {"cos": power[tau]})
            if d == cfg.dims[0]:
                curves["cos_vs_iterations_power_method"] = Curve.of_prompts(
                    power.mean(-1).T, range(power.shape[0]), "power iterations τ per vector",
                    "mean |cos| to the true eigenvector",
                ).to_json()  # fmt: skip
            for attention in cfg.attentions if d == cfg.dims[0] else ("relu",):
                say(f"training {attention} attention, d = {d}")
                model, fmt_, hist = train_model(cfg, d, attention, dev, out, say)
                curves[f"train_loss_{attention}_d{d}"] = Curve.of_training(hist, "loss").to_json()
                put(scalars, f"{attention}_d{d}", model_scores(model, fmt_, batch))
                if d == cfg.dims[0]:
                    by_layer = cos_by_layer(model, fmt_, cfg, d, batch, dev).tolist()
                    curves[f"cos_by_layer_transformer_{attention}"] = Curve(
                        list(range(L + 1)), by_layer, "layer", "mean |cos| (ridge read-out)"
                    ).to_json()
                    scalars[f"{attention}_layer_half_cos"] = by_layer[L // 2]
                    scalars[f"{attention}_layer_first_cos"] = by_layer[0]
                    scalars[f"{attention}_layer_last_cos"] = by_layer[-1]
                if d == cfg.dims[0] and attention == "relu":
                    digits = digits_batch(cfg, d, cfg.eval_prompts, dev)
                    put(scalars, "digits_relu", model_scores(model, fmt_, digits))
                    pm = power_curve(digits, cfg)[tau]
                    put(scalars, "digits_power_at_L", {"cos": pm})
        say("training the clustering transformer")
        cluster_model, hist = train_cluster_model(cfg, dev, out, say)
        curves["train_loss_clustering"] = Curve.of_training(hist, "loss").to_json()
        curves.update(clustering(cfg, dev, cluster_model))
        scalars.update(cluster_scalars(curves))
        say(f"construction at W = {list(cfg.construction_pieces)}")
        c_curves, c_scalars = construction_part(cfg, out)
        curves.update(c_curves)
        scalars.update(c_scalars)
        figures = [*figures_of(curves, out), out / "construction_vs_pieces.png"]
        comparison, verdicts, notes = report(cfg, scalars)
        return Result(curves, scalars, dict(PAPER), figures, comparison, verdicts, notes)


def construction_part(cfg: HeConfig, out: Path) -> tuple[dict, dict]:
    """The hand-built power-method transformer (float64, on the CPU) against the number W of
    ReLU pieces of its 1/‖Σv‖ interpolant (`constructions.power_method.width_table`)."""
    from icsim.constructions.power_method import width_table

    t = width_table(
        cfg.construction_pieces, dim=cfg.dims[0], steps=cfg.construction_steps, k=cfg.k,
        n_problems=cfg.construction_problems, seed=cfg.seed,
        path=out / "construction_vs_pieces.png",
    )  # fmt: skip
    curves = {
        f"construction_{key}": Curve(
            t["pieces"], t[key], "ReLU pieces W", "largest error (float64)"
        ).to_json()
        for key in ("bound", "norm_error", "later_vector_error", "eigenvalue_error")
    }
    within = all(e <= b for e, b in zip(t["norm_error"], t["bound"], strict=True))
    scalars = {
        "construction_first_vector_error": max(t["first_vector_error"]),
        "construction_norm_within_bound": float(within),
    }
    return curves, scalars


def put(scalars: dict, prefix: str, scores: dict) -> None:
    """Scalars of per-prompt scores: mean |cos| overall and per vector, median eigenvalue error."""
    cos = scores["cos"].double()
    scalars[f"{prefix}_cos_mean"] = cos.mean().item()
    for j in range(cos.shape[-1]):
        scalars[f"{prefix}_cos_v{j + 1}"] = cos[:, j].mean().item()
    if "value_error" in scores:
        scalars[f"{prefix}_value_error_median"] = scores["value_error"].double().median().item()


def figures_of(curves: dict, out: Path) -> list:
    layer = {k: v for k, v in curves.items() if k.startswith("cos_by_layer")}
    loss = {k: v for k, v in curves.items() if k.startswith("train_loss")}
    clus = {k: v for k, v in curves.items() if k.startswith("misclustering")}
    return [
        plot_curves({"power method": curves["cos_vs_iterations_power_method"]},
                    out / "cos_vs_iterations_power_method.png", title="power method"),
        plot_curves(layer, out / "cos_by_layer.png", title="trained transformers, per layer"),
        plot_curves(loss, out / "training_loss.png", logy=True, title="training loss"),
        plot_curves(clus, out / "misclustering_vs_separation.png", title="two-class clustering"),
    ]  # fmt: skip
