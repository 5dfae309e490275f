"""He, Cao, Chen, Wu, Fan, Liu 2025, "Learning spectral methods by transformers" (arXiv
2501.01312): transformers trained to output the top-k eigenpairs of a prompt's sample covariance,
against the power method at equal iterations, per layer, across d and attention kinds, on
scikit-learn's bundled digits, and two-class spectral clustering against Lloyd."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from icsim import algorithms, tasks
from icsim.analysis.plots import plot_curves
from icsim.analysis.probes import hidden_at_predictions
from icsim.analysis.report import Comparison, Curve, Finding, fill_beside, fmt, judge_all
from icsim.analysis.spectral_metrics import (
    abs_cosine,
    eigenvalue_relative_error,
    misclustering_up_to_sign,
)
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.models import ModelConfig, Transformer
from icsim.models.spectral_formats import PCAQueries
from icsim.tasks.base import TaskBatch
from icsim.tasks.pca import top_eigenpairs
from icsim.training.settings import RunSettings
from icsim.training.trainer import resolve_device


@dataclass(frozen=True, kw_only=True)
class TrainSettings(RunSettings):
    """One transformer per (attention, d): AdamW at lr 1e-3, cosine decay, on fresh prompts."""

    n_layer: int = 4
    n_head: int = 2  # the paper: 2–8 heads
    n_embd: int = 64
    steps: int = 1500
    lr: float = 1e-3
    schedule: str = "cosine"


@dataclass(frozen=True)
class HeConfig:
    train: TrainSettings
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
    construction_pieces: tuple[int, ...] = (32, 64, 128, 256)  # W of the 1/‖Σv‖ interpolant
    construction_steps: int = 5  # τ per vector
    construction_problems: int = 64
    seed: int = 0


PROFILES = {
    # The paper's sizes: d up to ~50, k up to ~5, deeper models (their exact grids unverified).
    "full": HeConfig(
        train=TrainSettings(n_layer=8, n_head=8, n_embd=256, steps=50_000, batch_size=128),
        dims=(10, 20, 50),
        k=3,
        n_points=100,
        power_iterations=20,
        eval_prompts=4096,
        probe_prompts=8192,
    ),
    # 2 CPU cores, minutes: d = 5 and 10, k = 2, N = 20, 4 layers of width 64.
    "quick": HeConfig(train=TrainSettings()),
}

PAPER = {  # as reviewers report the paper (PAPERS.md §8, unverified)
    "eigenvalue_relative_error_synthetic": "< 2% at small d",
    "cosine_synthetic": "near 1 at small d, falling with d and k",
    "real_data": "about 10x the synthetic error; cosine <= 0.5 for k > 1 (MNIST)",
}


def pca_task(cfg: HeConfig, d: int):
    return tasks.get("pca", dim=d, k=cfg.k, gap=cfg.gap)


def train_model(cfg: HeConfig, d: int, attention: str, device, out: Path, say):
    """A transformer trained on `sign_free_eigenpairs` through the one Trainer."""
    from icsim.training import Trainer, losses

    t, fmt_ = cfg.train, PCAQueries(d, cfg.k)
    torch.manual_seed(cfg.seed + d)
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
        seeds=(cfg.seed + d,), device=device, on_log=progress,
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
    ridge is solved here with d + 1 outputs)."""
    g = torch.Generator(device=device).manual_seed(cfg.seed + 7)
    train = pca_task(cfg, d).sample(cfg.probe_prompts, cfg.n_points, generator=g, device=device)

    def features(b):
        h = hidden_at_predictions(model, fmt_, b).double()  # [L+1, B, k, E]
        return torch.cat([h, h.new_ones(*h.shape[:-1], 1)], -1).flatten(1, 2)

    f, y = features(train), fmt_.targets(train).double().flatten(0, 1)  # [L+1, Bk, E+1], [Bk, d+1]
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


def clustering(cfg: HeConfig, device) -> dict:
    """Mean misclustering against separation: the spectral algorithm and, where the clustering
    module registers it, Lloyd's algorithm."""
    curves = {}
    solvers = {"spectral_clustering": algorithms.get("spectral_clustering")}
    if "lloyd" in algorithms.names():  # the clustering issue's solver, once merged
        solvers["lloyd"] = algorithms.get("lloyd")
    g = torch.Generator(device=device).manual_seed(cfg.seed + 13)
    rows = {n: [] for n in solvers}
    for sep in cfg.separations:
        task = tasks.get("spectral_clustering", dim=cfg.dims[0], separation=sep)
        b = task.sample(cfg.eval_prompts, cfg.cluster_points, generator=g, device=device)
        for n, solver in solvers.items():
            labels = solver.run(b).predictions[-1]
            pred = torch.where(labels == labels[:, :1], 1.0, -1.0)  # any two-label coding -> ±1
            rows[n].append(misclustering_up_to_sign(pred, b.labels))
    for n in solvers:
        values = torch.stack(rows[n], 1)  # [B, S]
        curves[f"misclustering_{n}"] = Curve.of_prompts(
            values, cfg.separations, "separation ‖2μ‖ (noise σ = 1)", "misclustering"
        ).to_json()
    return curves


@EXPERIMENTS.register("he2025-spectral")
class He2025Spectral(Experiment):
    """Spectral methods in transformers (He et al. 2025): PCA and spectral clustering

    He, Cao, Chen, Wu, Fan, Liu, *Learning Spectral Methods by Transformers*, arXiv 2501.01312
    (2025)"""

    cost = {
        "quick": "~6 min on 2 CPU cores (349 s measured, 2026-12-02)",
        "full": "a GPU: d up to ~50 (not yet measured)",
    }
    profiles = PROFILES

    # `--profile full --smoke`: training and evaluation cut to the minimum; shapes stay.
    smoke = {
        "eval_prompts": 8, "probe_prompts": 16, "power_iterations": 2, "separations": (2.0,),
        "dims": (10,), "construction_pieces": (16,), "construction_problems": 2,
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
        curves.update(clustering(cfg, dev))
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


def _gap(s, a, b):
    return s[a] - s[b]


def _vs(a: str, b: str, la: str, lb: str):
    return lambda s: f"{la} {fmt(s[a])}, {lb} {fmt(s[b])}"


def _below(name, claim, criterion, ours, than, la, lb):
    """A claim that scalar `ours` is below scalar `than` (both mean |cos|)."""
    return Finding.below(
        name, claim, criterion, ours, than, measured=_vs(ours, than, la, lb), needs=(ours, than)
    )


FINDINGS = [
    _below("falls_with_d", "accuracy falls as the dimension d grows",
           "ReLU model's mean |cos| at the largest d below that at the smallest",
           "relu_cos_dmax", "relu_cos", "largest d:", "smallest d:"),
    _below("falls_with_k", "accuracy falls for later eigenvectors (larger k)",
           "ReLU model's mean |cos| of the last eigenvector below that of the first",
           "relu_cos_vk", "relu_cos_v1", "last:", "first:"),
    Finding(
        "saturates_with_depth",
        "accuracy saturates with depth",
        "the ReLU model's per-layer |cos| gains less over its second half of layers than its first",
        lambda s: _gap(s, "relu_layer_last_cos", "relu_layer_half_cos")
        < _gap(s, "relu_layer_half_cos", "relu_layer_first_cos"),
        lambda s: f"layer 0 → L/2: +{fmt(_gap(s, 'relu_layer_half_cos', 'relu_layer_first_cos'))}"
        f", L/2 → L: +{fmt(_gap(s, 'relu_layer_last_cos', 'relu_layer_half_cos'))}",
        needs=("relu_layer_first_cos", "relu_layer_half_cos", "relu_layer_last_cos"),
    ),
    _below("relu_beats_softmax", "ReLU attention beats softmax attention",
           "softmax model's mean |cos| below the ReLU model's (same size, data and steps)",
           "softmax_cos", "relu_cos", "softmax", "ReLU"),
    _below("beats_power_method", "the transformer beats the plain power method at equal iterations",
           "power method's mean |cos| with τ = L iterations per vector below the L-layer ReLU "
           "model's (the construction needs 2 layers per iteration: τ = L is generous to it)",
           "power_cos_at_L", "relu_cos", "power method", "transformer"),
    _below("real_data_harder",
           "real data (MNIST there, digits here) is harder than the synthetic prompts",
           "ReLU model's mean |cos| on digits below that on synthetic prompts",
           "digits_cos", "relu_cos", "digits", "synthetic"),
    Finding(
        "construction_exact",
        "the hand-built transformer carries out the power method: its first eigenvector's "
        "directions equal the algorithm's and every norm stays within the stated bound ε_W",
        "vector 1's largest relative error <= 1e-10 (float64) and |‖v‖ − 1| <= ε_W at every W",
        lambda s: s["construction_first_vector_error"] <= 1e-10
        and s["construction_norm_within_bound"] == 1,
        lambda s: f"vector 1 error {fmt(s['construction_first_vector_error'])}, norms within "
        f"bound: {'yes' if s['construction_norm_within_bound'] else 'no'}",
        of_paper=False,
        needs=("construction_first_vector_error", "construction_norm_within_bound"),
    ),
]  # fmt: skip


def headline(cfg: HeConfig, scalars: dict) -> dict:
    """The fixed-name scalars the findings read."""
    d, k, out = cfg.dims[0], cfg.k, {}
    names = {
        "relu_cos": f"relu_d{d}_cos_mean", "relu_cos_dmax": f"relu_d{max(cfg.dims)}_cos_mean",
        "relu_cos_v1": f"relu_d{d}_cos_v1", "relu_cos_vk": f"relu_d{d}_cos_v{k}",
        "softmax_cos": f"softmax_d{d}_cos_mean", "power_cos_at_L": f"power_d{d}_at_L_cos_mean",
        "digits_cos": "digits_relu_cos_mean",
    }  # fmt: skip
    for short, long in names.items():
        if long in scalars and not (short == "relu_cos_dmax" and max(cfg.dims) == d):
            out[short] = scalars[long]
    return out


def report(cfg: HeConfig, scalars: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the numbers."""
    d = cfg.dims[0]
    scalars.update(headline(cfg, scalars))
    comparison = [
        Comparison(f"ReLU transformer eigenvalue rel. error (median, d = {d})",
                   f"relu_d{d}_value_error_median", PAPER["eigenvalue_relative_error_synthetic"]),
        Comparison(f"ReLU transformer mean |cos| (d = {d}, k = {cfg.k})", f"relu_d{d}_cos_mean",
                   PAPER["cosine_synthetic"]),
        Comparison(f"softmax transformer mean |cos| (d = {d})", f"softmax_d{d}_cos_mean", "—"),
        Comparison(f"power method mean |cos| at τ = L (d = {d})", f"power_d{d}_at_L_cos_mean",
                   "—"),
        Comparison("ReLU transformer mean |cos| on digits", "digits_relu_cos_mean",
                   PAPER["real_data"]),
        Comparison("power method mean |cos| on digits at τ = L", "digits_power_at_L_cos_mean",
                   "—"),
    ]  # fmt: skip
    verdicts = judge_all(FINDINGS, scalars)
    t = cfg.train
    ctx = {
        "steps": t.steps, "n_head": t.n_head, "n_embd": t.n_embd, "batch_size": t.batch_size,
        "n_points": cfg.n_points, "gap": cfg.gap, "dims": ", ".join(map(str, cfg.dims)),
        "eval_prompts": cfg.eval_prompts, "lloyd": "lloyd" in algorithms.names(),
        "cluster_points": cfg.cluster_points,
    }  # fmt: skip
    notes = fill_beside(__file__, {**scalars, **ctx}, verdicts)
    return comparison, list(verdicts.values()), notes
