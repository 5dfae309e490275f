"""von Oswald et al. 2023, "Transformers learn in-context by gradient descent": a trained
one-layer linear self-attention (LSA) model is one step of GD at the best step size; deeper
trained models against K steps of GD and of GD++; the hand-built constructions beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import icsim
from icsim.algorithms.gradient_descent import tune_step_size
from icsim.analysis.construction_figures import plot_error_growth
from icsim.analysis.metrics import half_mse, sensitivity_agreement
from icsim.analysis.plots import plot_curves
from icsim.analysis.probes import model_sensitivity
from icsim.analysis.report import Comparison, Curve, Finding, fill_beside, fmt, judge_all
from icsim.constructions.verify import error_growth
from icsim.experiments.base import EXPERIMENTS, Experiment, Result, with_device
from icsim.training import Curriculum, TrainConfig, Trainer


@dataclass(frozen=True)
class VonOswaldConfig:
    dim: int = 10  # d
    n_context: int = 10  # N
    x_range: float = 1.0  # x ~ U(−r, r)^d: r = 1 in the paper, 0.5 in their code
    depths: tuple[int, ...] = (1, 2, 3, 5)  # trained LSA models; K = 1 is the main result
    train: TrainConfig = field(default_factory=TrainConfig)  # per-model settings (layers = K)
    deep_steps: int = 0  # training steps for K > 1 (0: the same as train.steps)
    eval_tasks: int = 10_000  # the paper evaluates on 10k tasks
    gd_plus_plus_gammas: tuple[float, ...] = tuple(0.25 * i for i in range(13))
    growth_steps: int = 10  # float32 error growth of the constructions, steps shown
    growth_problems: int = 1000
    eval_seed: int = 4321


def lsa_train_config(dim: int, n_context: int, x_range: float, **overrides) -> TrainConfig:
    """Their model: linear self-attention on stacked tokens [x; y], no read-in, no positional
    embedding, no MLP or LayerNorm; Adam(0.9, 0.98), lr 1e-3, batch 2048, fresh data every step
    (von Oswald et al. 2023, App. A)."""
    base = dict(
        task="linear_regression",
        dim=dim,
        task_params={"x_distribution": "uniform", "x_range": x_range},
        token_format="stacked",
        attention="linear",
        mlp=False,
        layer_norm=False,
        positional=False,
        read_in=False,
        n_layer=1,
        n_head=1,
        n_embd=dim + 1,
        batch_size=2048,
        lr=1e-3,
        betas=(0.9, 0.98),
        grad_clip=0.0,
        curriculum=Curriculum(
            enabled=False,
            dims_start=dim,
            dims_end=dim,
            points_start=n_context + 1,
            points_end=n_context + 1,
        ),
    )
    return TrainConfig(**{**base, **overrides})


PROFILES = {
    # The paper: 5k steps per model (50k for deeper models with separate layers), evaluated on
    # 10k tasks, x ~ U(−1, 1)^10.
    "full": VonOswaldConfig(
        train=lsa_train_config(10, 10, 1.0, steps=5000, log_every=100, checkpoint_every=5000),
        deep_steps=50_000,
    ),
    # 2 CPU cores: the same model and data, fewer steps, a cosine decay to settle the loss.
    "quick": VonOswaldConfig(
        train=lsa_train_config(
            10,
            10,
            1.0,
            steps=2000,
            schedule="cosine",
            min_lr_ratio=0.05,
            log_every=100,
            checkpoint_every=2000,
        ),
        deep_steps=2000,
    ),
}

# PAPERS.md §2: Monte Carlo reference losses (½·MSE, 200k tasks) under their code's
# x ~ U(−0.5, 0.5)^10; under U(−r, r) every loss scales by (r/0.5)² (the problem is homogeneous).
REFERENCE_LOSS_HALF_RANGE = {"zero": 0.416, 1: 0.205, 2: 0.157, 3: 0.133, 5: 0.109}
PAPER = {
    "loss_gd_1step_code_distribution": 0.205,
    "best_eta_over_n_code_distribution": 0.61,
    "model_cos_1layer": "≈ 1 (Fig. 2)",
    "finding": "trained 1-layer LSA = 1 step of GD; deeper trained models track GD++",
}


def tune_gd_plus_plus(batch, steps: int, etas, gammas):
    """(η, γ) of `steps`-step GD++ with the least query loss on `batch` (a grid search)."""
    best = (float("inf"), None, None)
    for gamma in gammas:  # a loop over the grid, each point batched over all tasks
        for eta in etas:
            algo = icsim.algorithms.get("gd_plus_plus", step_size=float(eta), gamma=float(gamma))
            pred = algo.run(batch, steps).predictions[-1][:, 0]
            loss = half_mse(pred, batch.ys[:, -1])
            if loss < best[0]:
                best = (loss, float(eta), float(gamma))
    return best


@EXPERIMENTS.register("vonoswald2023-gd")
class VonOswald2023(Experiment):
    """Linear self-attention trained in context = gradient descent (von Oswald et al. 2023)

    von Oswald, Niklasson, Randazzo, Sacramento, Mordvintsev, Zhmoginov, Vladymyrov, *Transformers
    learn in-context by gradient descent*, ICML 2023"""

    cost = {"quick": "~8 min on 2 CPU cores", "full": "< 1 GPU-hour"}
    profiles = PROFILES

    def run(self, cfg: VonOswaldConfig, out: Path, device: str, quiet: bool) -> Result:
        d, n = cfg.dim, cfg.n_context
        params = {**cfg.train.task_params, "x_range": cfg.x_range}
        base = with_device(replace(cfg.train, dim=d, task_params=params, n_embd=d + 1), device)
        task = icsim.tasks.get(base.task, dim=d, **base.task_params)
        g = torch.Generator(device=device).manual_seed(cfg.eval_seed)
        tune_batch = task.sample(cfg.eval_tasks, n + 1, generator=g, device=device)
        batch = task.sample(cfg.eval_tasks, n + 1, generator=g, device=device)
        y = batch.ys[:, -1]
        scalars = {"dim": d, "n_context": n, "x_range": cfg.x_range}
        scalars["loss_zero"] = half_mse(torch.zeros_like(y), y)
        curves = {}
        for K in cfg.depths:
            steps = cfg.train.steps if K == 1 or not cfg.deep_steps else cfg.deep_steps
            trainer = Trainer(
                replace(base, n_layer=K, steps=steps), out / f"train-{K}layer", quiet=quiet
            )
            trainer.train()
            scalars.update(measure_depth(trainer, K, cfg, task, batch, tune_batch, device))
            curves[f"train_loss_{K}layer"] = train_curve(out / f"train-{K}layer").to_json()
        scalars["loss_gd_1step_relative_gap"] = (
            scalars["loss_trained_1layer"] / scalars["loss_gd_1step"] - 1
            if 1 in cfg.depths
            else float("nan")
        )
        scalars.update(reference_losses(cfg))
        for key, label, what in (("gd_best_loss", "steps K", "loss_gd_{}step"),
                                 ("trained_loss", "layers K", "loss_trained_{}layer")):  # fmt: skip
            ys = [scalars[what.format(K)] for K in cfg.depths]
            curves[key] = Curve(list(cfg.depths), ys, label, "½·MSE").to_json()
        figures = [
            plot_curves(
                {k: curves[k] for k in curves if k.startswith("train_loss")},
                out / "training_loss.png",
                title="training loss (½·MSE) of trained LSA models",
                hlines={f"GD {K} steps": scalars[f"loss_gd_{K}step"] for K in cfg.depths},
            )
        ]
        figures += construction_growth(cfg, out, curves, scalars)
        return Result(curves, scalars, PAPER, figures, *report(cfg, scalars, curves))

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    smoke = {"deep_steps": 2, "eval_tasks": 8, "growth_problems": 8}


def measure_depth(trainer, K: int, cfg: VonOswaldConfig, task, batch, tune_batch, device) -> dict:
    """A trained K-layer model against K steps of GD (and of GD++ for K > 1) and against the
    hand-built K-layer GD construction, on the same held-out tasks."""
    d, n, y = cfg.dim, cfg.n_context, batch.ys[:, -1]
    trainer.model.eval()
    pred_tf, grad_tf = model_sensitivity(trainer.model, trainer.fmt, batch)
    # K steps of GD at the step size a grid search picks on held-out tasks (as the paper)
    eta = tune_step_size(
        task,
        n_points=n + 1,
        steps=K,
        n_problems=cfg.eval_tasks,
        generator=torch.Generator(device=device).manual_seed(cfg.eval_seed + K),
        device=device,
    )
    traj = icsim.algorithms.get("gradient_descent", step_size=eta).run(batch, K)
    pred_gd, w_gd = traj.predictions[-1][:, 0], traj.iterates[-1]
    # the hand-built K-layer construction at the same η: GD exactly, for comparison
    cmodel, cfmt = icsim.constructions.build("gd", dim=d, steps=K, step_size=eta)
    with torch.no_grad():
        pred_c = cfmt.run(cmodel.to(batch.xs.device, batch.xs.dtype), batch)[:, 0]
    tag = f"{K}layer"
    s = {
        f"loss_trained_{tag}": half_mse(pred_tf, y),
        f"loss_gd_{K}step": half_mse(pred_gd, y),
        f"eta_gd_{K}step": eta,
        f"loss_construction_{tag}": half_mse(pred_c, y),
        f"training_steps_{tag}": trainer.cfg.steps,
    }
    for key, v in sensitivity_agreement(pred_tf, grad_tf, pred_gd, w_gd).items():
        s[f"{key}_{tag}"] = v
    if K > 1:
        etas = torch.linspace(0.25, 2.0, 15) * eta
        loss_pp, eta_pp, gamma_pp = tune_gd_plus_plus(tune_batch, K, etas, cfg.gd_plus_plus_gammas)
        algo = icsim.algorithms.get("gd_plus_plus", step_size=eta_pp, gamma=gamma_pp)
        traj = algo.run(batch, K)
        pred_pp = traj.predictions[-1][:, 0]
        grad_pp = traj.iterates[-1]  # GD++ predicts wᵀx_q in the original coordinates
        s[f"loss_gd_plus_plus_{K}step"] = half_mse(pred_pp, y)
        s[f"eta_gd_plus_plus_{K}step"] = eta_pp
        s[f"gamma_gd_plus_plus_{K}step"] = gamma_pp
        for key, v in sensitivity_agreement(pred_tf, grad_tf, pred_pp, grad_pp).items():
            s[f"{key}_{tag}_vs_gd_plus_plus"] = v
    return s


def reference_losses(cfg: VonOswaldConfig) -> dict:
    """The paper's Monte Carlo losses scaled to x ~ U(−r, r) (they hold for d = N = 10 only)."""
    if (cfg.dim, cfg.n_context) != (10, 10):
        return {}
    scale = (cfg.x_range / 0.5) ** 2
    out = {"reference_loss_zero": REFERENCE_LOSS_HALF_RANGE["zero"] * scale}
    for K in cfg.depths:
        if K in REFERENCE_LOSS_HALF_RANGE:
            out[f"reference_loss_gd_{K}step"] = REFERENCE_LOSS_HALF_RANGE[K] * scale
    return out


def construction_growth(cfg: VonOswaldConfig, out: Path, curves: dict, scalars: dict) -> list:
    """float32 error growth of the constructions against their algorithms, κ ∈ {1, 10, 100}
    (CPU-only: the constructions are checked in float64 there, whatever the run's device)."""
    figures = []
    for name in ("gd", "iterative_newton_regression"):
        growth = error_growth(name, cfg.growth_steps, n_problems=cfg.growth_problems)
        figures.append(
            plot_error_growth(
                growth,
                out / f"float32_error_growth_{name}.png",
                title=f"{name} construction in float32 vs its algorithm (float64)",
            )
        )
        for label, c in growth.items():
            curves[f"float32_error_{name}_{label}"] = c
            scalars[f"float32_max_error_{name}_{label}"] = max(c["y_max"])
    return figures


def train_curve(run_dir: Path) -> Curve:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return Curve.of_training(rows, "½·MSE (training batch)", scale=0.5)


def findings(cfg: VonOswaldConfig) -> list[Finding]:
    out = [
        Finding(
            "one_layer_is_gd",
            "a trained one-layer LSA model is one step of GD at the best step size",
            "loss within 2% of one-step GD's and sensitivity cosine ≥ 0.99",
            lambda s: (
                abs(s["loss_gd_1step_relative_gap"]) <= 0.02 and s["model_cos_1layer"] >= 0.99
            ),
            lambda s: (
                f"loss {100 * s['loss_gd_1step_relative_gap']:+.2f}% from GD's "
                f"({fmt(s['loss_trained_1layer'])} vs {fmt(s['loss_gd_1step'])}), cosine "
                f"{s['model_cos_1layer']:.4f}"
            ),
            needs=("loss_gd_1step_relative_gap", "model_cos_1layer"),
        ),
        Finding(
            "gd_reference_loss",
            "one step of GD at the best η reaches the paper's loss",
            "within 5% of the paper's Monte Carlo value (scaled to our x range)",
            lambda s: abs(s["loss_gd_1step"] / s["reference_loss_gd_1step"] - 1) <= 0.05,
            lambda s: (
                f"{fmt(s['loss_gd_1step'])} vs {fmt(s['reference_loss_gd_1step'])} "
                f"({100 * (s['loss_gd_1step'] / s['reference_loss_gd_1step'] - 1):+.1f}%)"
            ),
            needs=("loss_gd_1step", "reference_loss_gd_1step"),
        ),
    ]
    for K in cfg.depths:
        out.append(
            Finding(
                f"construction_is_gd_{K}",
                f"the hand-built {K}-layer gd construction computes {K}-step GD",
                "its loss within 1e-4 (relative) of GD's at the same η",
                lambda s, K=K: (
                    abs(s[f"loss_construction_{K}layer"] / s[f"loss_gd_{K}step"] - 1) <= 1e-4
                ),
                lambda s, K=K: (
                    f"{fmt(s[f'loss_construction_{K}layer'])} vs {fmt(s[f'loss_gd_{K}step'])}"
                ),
                of_paper=False,
                needs=(f"loss_construction_{K}layer", f"loss_gd_{K}step"),
            )
        )
        if K == 1:
            continue
        out += [
            Finding(
                f"deeper_beats_gd_{K}",
                f"a trained {K}-layer model does better than {K} steps of GD",
                f"trained loss below {K}-step GD's at its best η",
                lambda s, K=K: s[f"loss_trained_{K}layer"] < s[f"loss_gd_{K}step"],
                lambda s, K=K: (
                    f"{fmt(s[f'loss_trained_{K}layer'])} vs "
                    f"{fmt(s[f'loss_gd_{K}step'])} (GD++: {fmt(s[f'loss_gd_plus_plus_{K}step'])})"
                ),
                needs=(f"loss_trained_{K}layer", f"loss_gd_{K}step"),
            ),
            Finding(
                f"deeper_tracks_gd_plus_plus_{K}",
                f"a trained {K}-layer model tracks {K} steps of GD++",
                "sensitivity cosine with GD++ ≥ 0.99",
                lambda s, K=K: s[f"model_cos_{K}layer_vs_gd_plus_plus"] >= 0.99,
                lambda s, K=K: (
                    f"cosine {s[f'model_cos_{K}layer_vs_gd_plus_plus']:.4f} with GD++ "
                    f"(with GD: {s[f'model_cos_{K}layer']:.4f})"
                ),
                needs=(f"model_cos_{K}layer_vs_gd_plus_plus",),
            ),
        ]
    return out


def report(cfg: VonOswaldConfig, scalars: dict, curves: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the numbers."""
    scale = (cfg.x_range / 0.5) ** 2
    rows = [
        Comparison("zero predictor: loss", "loss_zero",
                   scalars.get("reference_loss_zero", "not reported"),
                   f"exact: ½·d·r²/3 = {cfg.dim * cfg.x_range**2 / 6:.4g}"),
    ]  # fmt: skip
    for K in cfg.depths:
        tag, ref = f"{K}layer", scalars.get(f"reference_loss_gd_{K}step")
        eta = scalars.get(f"eta_gd_{K}step", float("nan"))
        rows += [
            Comparison(f"{K}-layer LSA, trained: loss", f"loss_trained_{tag}",
                       "≈ GD's" if K == 1 else "below GD's, ≈ GD++",
                       f"{scalars.get(f'training_steps_{tag}', '?')} training steps"),
            Comparison(f"{K}-step GD, best η ({eta:.3g}): loss", f"loss_gd_{K}step",
                       ref if ref is not None else "not reported",
                       f"paper's code distribution × {scale:g}" if ref is not None else ""),
            Comparison(f"{K}-layer trained vs {K}-step GD: model cos", f"model_cos_{tag}",
                       "≈ 1" if K == 1 else "< 1 (tracks GD++)"),
        ]  # fmt: skip
        if K > 1:
            rows.append(
                Comparison(f"{K}-layer trained vs {K}-step GD++: model cos",
                           f"model_cos_{tag}_vs_gd_plus_plus", "≈ 1", "GD++ (η, γ) by grid")
            )  # fmt: skip
    verdicts = judge_all(findings(cfg), scalars)
    deep = cfg.deep_steps or cfg.train.steps
    ctx = {
        "eval_tasks": cfg.eval_tasks, "d": cfg.dim, "N": cfg.n_context, "r": f"{cfg.x_range:g}",
        "scale": f"{scale:g}", "deep_steps": deep,
        "deep_vs_paper": "far fewer than" if deep < 50_000 else "as many as",
    }  # fmt: skip
    notes = fill_beside(__file__, {**scalars, **ctx}, verdicts)
    return rows, list(verdicts.values()), notes
