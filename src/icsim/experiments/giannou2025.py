"""Giannou, Yang, Wang, Papailiopoulos, Lee 2025, "How Well Can Transformers Emulate In-context
Newton's Method?" (AISTATS 2025): damped Newton for regularised logistic regression, in a
hand-built linear-attention + ReLU transformer (Thm 5.1) and in trained transformers.

Two parts, on the same prompts (d = 5, n = 26 examples with ‖a_i‖ ≤ 1, μ = 0.1):
(a) the `logistic_newton` construction against exact damped Newton, per Newton step and across
    MLP widths (the error falls like Newton's to a floor that falls as the width doubles), and
    the depth it spends per Newton step: the depth-vs-Newton-steps table;
(b) transformers of several depths trained to output the damped-Newton solution w_N (their
    code: MSE on w, read out at the last token), each compared with the number of damped-Newton
    and GD steps, and the construction depth, that reach the same distance to w_N.
The report (`giannou2025.md`, filled by `giannou2025_findings.report`) is a pure function of
the scalars and curves.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import icsim
from icsim import _validate as V
from icsim.algorithms.logistic import (
    LogisticDampedNewton,
    LogisticGradientDescent,
    logistic_loss,
    newton_solution,
)
from icsim.analysis.construction_figures import newton_depth_figure, newton_width_measures
from icsim.analysis.evaluation import in_chunks
from icsim.analysis.metrics import matched_steps, w_error
from icsim.analysis.plots import plot_curves
from icsim.analysis.report import Curve
from icsim.constructions.logistic_newton import DEFAULT_WIDTH, logistic_newton, weights_per_step
from icsim.constructions.logistic_newton_table import error_table
from icsim.errors import InputError
from icsim.experiments import giannou2025_findings as F
from icsim.experiments.base import EXPERIMENTS, Experiment, Result, ends
from icsim.experiments.giannou2025_findings import report
from icsim.models import ModelConfig, Stacked, Transformer
from icsim.training import checkpoint as ckpt
from icsim.training.settings import RunSettings
from icsim.training.trainer import resolve_device

__all__ = ["GiannouConfig", "matched_steps", "newton_solution", "report", "w_error"]


@dataclass(frozen=True)
class ConstructionSettings:
    """Part (a): the hand-built transformer."""

    widths: tuple[int, ...] = (32, 64, 128, 256)  # W, grid intervals of the ReLU interpolants
    steps: int = 6  # Newton steps T in the per-step error figure (enough to reach the floor)
    prompts: int = 32  # prompts for the per-step error figure (float64)
    # k (Newton–Schulz steps per Newton step) for the depth table; None = the default
    # ⌈log₂(κ_f² ln 10¹⁰)⌉ (9 at μ = 0.1). The paper's "13 layers per step" is k = 1.
    newton_schulz_steps: tuple[int | None, ...] = (1, 3, None)
    table_steps: int = 5  # Newton steps T in the depth table
    table_width: int = DEFAULT_WIDTH
    # the depth table runs on the first `table_prompts` evaluation prompts (float64; ~100 layers
    # with a 1290-unit MLP each: the costliest forward pass of the experiment)
    table_prompts: int = 64
    chunk: int = 128  # prompts per forward pass (hidden states of ~120 layers are kept)


@dataclass(frozen=True, kw_only=True)
class TrainingSettings(RunSettings):
    """Part (b): one transformer per depth, trained to output w_N (MSE on w, their code); AdamW
    at lr 1e-3 with cosine decay (the rest of the run: `RunSettings`' defaults)."""

    depths: tuple[int, ...] = (1, 2, 4)
    n_embd: int = 32
    n_head: int = 4
    attention: str = "softmax"  # their code's logistic model: a softmax GPT-2 with LayerNorm
    layer_norm: bool = True
    steps: int = 2000
    lr: float = 1e-3
    schedule: str = "cosine"
    log_every: int = 250


@dataclass(frozen=True)
class GiannouConfig:
    dim: int = 5
    n_context: int = 26
    mu: float = 0.1
    x_distribution: str = "ball"  # ‖a_i‖ ≤ 1, the paper's assumption (the construction needs it)
    label_model: str = "bernoulli"
    condition_numbers: tuple[float, ...] = (1.0,)
    newton_iterations: int = 30  # w_N = damped Newton run to convergence, at most 30 steps
    newton_steps: int = 8  # damped-Newton steps on the comparison curves
    gd_steps: int = 100
    eval_prompts: int = 256
    seed: int = 0
    eval_seed: int = 12345
    construction: ConstructionSettings = field(default_factory=ConstructionSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)

    def __post_init__(self):
        c, t = self.construction, self.training
        for prefix, obj, names in (
            ("", self, ("dim", "n_context", "newton_iterations", "newton_steps", "gd_steps",
                        "eval_prompts")),
            ("construction.", c, ("table_steps", "prompts", "table_prompts", "chunk", "steps")),
            ("training.", t, ("n_embd", "n_head", "steps", "batch_size", "log_every")),
        ):  # fmt: skip
            for name in names:
                V.positive_int(prefix + name, getattr(obj, name))
        for prefix, values in (("construction.widths", c.widths), ("training.depths", t.depths)):
            for v in values:
                V.positive_int(prefix, v)
        V.number("mu", self.mu, low=0, low_open=True)
        for kappa in self.condition_numbers:
            V.number("condition_numbers", kappa, low=1)
        for k in c.newton_schulz_steps:
            if k is not None:
                V.nonnegative_int("construction.newton_schulz_steps", k)
        if c.steps < 3:
            raise InputError(
                f"construction.steps must be >= 3 (the acceptance check is at T = 3), "
                f"got {c.steps}."
            )
        if not t.depths:
            raise InputError("training.depths is empty; give at least one depth, e.g. (1, 2, 4).")


PROFILES = {
    # 2 CPU cores, ~15 min: κ = 1, depths 1/2/4 of the paper's 32-wide 4-head model, 2000 steps.
    "quick": GiannouConfig(construction=ConstructionSettings(newton_schulz_steps=(1, None))),
    # The paper's model and task (d = 5, n = 26, width 32, 4 heads, μ = 0.1) with their code's
    # condition numbers, depths (less their depth 0, which our Transformer has no form of) and
    # batch 2000. Their logistic config trains 1000 steps at lr 1e-4 (cosine to 5e-5); we train
    # longer at a larger rate (see the report's notes), on a GPU.
    "full": GiannouConfig(
        condition_numbers=(1.0, 10.0, 50.0),
        eval_prompts=2000,
        construction=ConstructionSettings(
            widths=(32, 64, 128, 256, 512), prompts=256, table_steps=6, table_prompts=500
        ),
        training=TrainingSettings(
            depths=(1, 6, 12, 15, 20), steps=5000, batch_size=2000, log_every=500
        ),
    ),
}


W_LABEL, F_LABEL = "‖w − w_N‖²/d", "f(w) − f(w_N)"

# --- part (b): training to the Newton solution ---------------------------------------------------


def build_model(cfg: GiannouConfig, depth: int, fmt: Stacked) -> Transformer:
    """The trained model: read-in, `depth` blocks with ReLU MLPs, read-out of w (d outputs)
    at the query token. No positional embedding: the prompt is a set of examples."""
    t = cfg.training
    return Transformer(ModelConfig(
        n_dims_in=fmt.width, n_dims_out=cfg.dim, n_layer=depth, n_head=t.n_head, n_embd=t.n_embd,
        attention=t.attention, layer_norm=t.layer_norm, activation="relu", positional=False,
        causal=False,
    ))  # fmt: skip


def train_to_newton(cfg: GiannouConfig, task, depth: int, device, log_path: Path, say):
    """Train one depth with MSE between the read-out and w_N on fresh prompts every step.

    The paper's logistic models output the whole weight vector w_N of the full context (their
    train.py, output_type "w"): the batch carries w_N as its target (`losses.mse_to_target`)."""
    from icsim.training import Trainer, losses

    t = cfg.training
    fmt = Stacked(cfg.dim, n_queries=1)
    torch.manual_seed(cfg.seed + depth)
    model = build_model(cfg, depth, fmt).to(device)

    def sample(step, rng):
        batch = task.sample(t.batch_size, cfg.n_context + 1, generator=rng.device, device=device)
        with torch.no_grad():
            problem = batch.to(dtype=torch.float64).split(cfg.n_context)
            target = newton_solution(problem, cfg.mu, cfg.newton_iterations).float()
        return losses.Targeted(batch, target)

    def progress(row):
        step, loss, rate = row["step"], row["loss"], row["steps_per_s"]
        say(f"depth {depth}: step {step}/{t.steps} loss {loss:.3g} ({rate:.1f} steps/s)")

    # checkpoints beside the log, so `icsim reproduce --resume` continues a killed depth
    run = t.run(log_path.with_name(f"train-{log_path.stem}"), log_file=log_path, quiet=True)
    trainer = Trainer(model, fmt, sample=sample, loss=losses.mse_to_target(fmt),
                      optim=t.optim(), run=run, seeds=(cfg.seed + 1000 * depth,), device=device,
                      on_log=progress)  # fmt: skip
    trainer.train()
    model.eval()
    return model, fmt, trainer.history


# --- part (a): the construction across widths ----------------------------------------------------


def construction_widths(cfg: GiannouConfig, out: Path) -> tuple[dict, dict]:
    """Per-step error of the construction against exact damped Newton at every width, and the
    floor it reaches: (curves, scalars)."""
    c = cfg.construction
    table = error_table(widths=c.widths, steps=c.steps, dim=cfg.dim, n_context=cfg.n_context,
                        mu=cfg.mu, n_problems=c.prompts, condition_number=cfg.condition_numbers[0],
                        seed=cfg.seed, path=out / "construction_vs_damped_newton.png")  # fmt: skip
    return newton_width_measures(table, c.table_width)


# --- part (a') and (b) on the evaluation prompts -------------------------------------------------


def construction_trajectory(cfg: GiannouConfig, batch, k, device) -> tuple[torch.Tensor, int, int]:
    """ŵ_0..ŵ_T [T+1, B, d] of the construction at `table_width` with k Newton–Schulz steps (in
    chunks of prompts: the hidden states of every layer are kept), its k and blocks per step."""
    c = cfg.construction
    model, fmt = logistic_newton(dim=cfg.dim, steps=c.table_steps, mu=cfg.mu, newton_schulz_steps=k,
                                 width=c.table_width, dtype=torch.float64)  # fmt: skip
    model = model.to(device)
    ws = in_chunks(lambda part: weights_per_step(model, fmt, part), batch, c.chunk, dim=1)
    info = model.construction
    return ws, info.hyperparameters["newton_schulz_steps"], info.layers_per_step


def depth_vs_newton(cfg: GiannouConfig, kappa: float, dev, out: Path, say) -> tuple[dict, dict]:
    """At one condition number, on the same float64 evaluation prompts: damped Newton and GD
    against w_N, the construction's depth table, and one trained transformer per depth matched
    against both. Returns (curves, scalars); every curve's bootstrap draws from one generator in
    a fixed order."""
    c, tag = cfg.construction, F.kappa_tag(kappa)
    task = icsim.tasks.get("logistic_regression", dim=cfg.dim, condition_number=kappa,
                           x_distribution=cfg.x_distribution,
                           label_model=cfg.label_model)  # fmt: skip
    gen = torch.Generator(device=dev).manual_seed(cfg.eval_seed)
    n = cfg.n_context + 1
    batch = task.sample(cfg.eval_prompts, n, generator=gen, device=dev, dtype=torch.float64)
    problem = batch.split(cfg.n_context)
    w_n = newton_solution(problem, cfg.mu, cfg.newton_iterations)
    f_n = logistic_loss(problem.X, problem.y, w_n, cfg.mu)
    boot = torch.Generator(device=dev).manual_seed(cfg.eval_seed)
    curves, scalars = {}, {}

    def excess(ws, n=None):  # f(w) − f(w_N) per prompt, ws [S, n, d] -> [n, S]
        f = torch.stack([logistic_loss(problem.X[:n], problem.y[:n], w, cfg.mu) for w in ws])
        return (f - f_n[:n]).T

    def add(name, per_prompt, x, x_label, y_label):
        curve = Curve.of_prompts(per_prompt, x, x_label, y_label, boot, True)
        curves[f"{name}_{tag}"] = curve.to_json()
        return curves[f"{name}_{tag}"]["y"]

    newton = LogisticDampedNewton(mu=cfg.mu).run(problem, cfg.newton_steps).iterates
    gd = LogisticGradientDescent(mu=cfg.mu).run(problem, cfg.gd_steps).iterates
    steps_n, steps_g = range(cfg.newton_steps + 1), range(cfg.gd_steps + 1)
    newton_err = add("damped_newton_w_error", w_error(newton, w_n).T, steps_n, "step", W_LABEL)
    gd_err = add("gd_w_error", w_error(gd, w_n).T, steps_g, "step", W_LABEL)
    add("damped_newton_excess_loss", excess(newton), steps_n, "step", F_LABEL)
    add("gd_excess_loss", excess(gd), steps_g, "step", F_LABEL)

    # the construction: depth against Newton steps, and the accuracy it reaches
    say(f"{tag}: construction depth table (k = {list(c.newton_schulz_steps)})")
    sub = min(c.table_prompts, cfg.eval_prompts)
    exact = LogisticDampedNewton(mu=cfg.mu).run(problem, c.table_steps).iterates[:, :sub]
    cons = {}  # k -> (blocks per Newton step, w_error curve)
    for k in c.newton_schulz_steps:
        traj, kk, lps = construction_trajectory(cfg, batch.rows(0, sub), k, dev)
        layers = [T * lps for T in range(c.table_steps + 1)]
        err = w_error(traj, w_n[:sub]).T
        cons[kk] = (lps, add(f"construction_k{kk}_w_error", err, layers, "layers", W_LABEL))
        add(f"construction_k{kk}_excess_loss", excess(traj, sub), layers, "layers", F_LABEL)
        to_exact = (traj - exact).norm(dim=-1).mean(-1).tolist()
        curves[f"construction_k{kk}_to_exact_{tag}"] = Curve(
            layers, to_exact, "layers", "mean ‖ŵ_T − w_T‖ (exact damped Newton)"
        ).to_json()
        scalars[f"construction_layers_per_step_k{kk}"] = lps

    # trained transformers, one per depth, on the same prompts
    per_depth = []
    for depth in cfg.training.depths:
        c_d, s_d, w_hat = trained_depth(cfg, task, depth, tag, dev, out, batch, say)
        curves.update(c_d)
        scalars.update(s_d)
        per_depth.append((w_error(w_hat, w_n), excess(w_hat[None])[:, 0]))
    depths = list(cfg.training.depths)
    err, exc = (torch.stack(v, 1) for v in zip(*per_depth))
    tf_err = add("transformer_w_error", err, depths, "layers", W_LABEL)
    tf_exc = add("transformer_excess_loss", exc, depths, "layers", F_LABEL)
    tf_sub = [e[:sub].mean().item() for e, _ in per_depth]  # on the construction's prompts
    m_curves, m_scalars = match_depths(
        tag, depths, tf_err, tf_exc, tf_sub, newton_err, gd_err, cons
    )
    return {**curves, **m_curves}, {**scalars, **m_scalars}


def trained_depth(cfg: GiannouConfig, task, depth, tag, dev, out: Path, batch, say):
    """Train one depth to w_N, save it, and read its ŵ on the evaluation prompts:
    (curves, scalars, ŵ [B, d] float64)."""
    tr, models_dir = cfg.training, out / "models"
    models_dir.mkdir(exist_ok=True)
    say(f"{tag}: training depth {depth} ({tr.steps} steps, batch {tr.batch_size})")
    log = models_dir / f"{tag}_depth{depth}.jsonl"
    model, fmt, hist = train_to_newton(cfg, task, depth, dev, log, lambda m: say(f"{tag}: {m}"))
    meta = {
        "model_kind": "transformer",
        "model_config": model.cfg.to_dict(),
        "target": "damped-Newton solution w_N, read out at the query token",
        "experiment": asdict(cfg),
    }
    ckpt.save(models_dir / f"{tag}_depth{depth}", tr.steps, model, {}, meta, keep=1)
    loss = Curve.of_training(hist, "MSE(w, w_N)")
    with torch.no_grad():
        w_hat = fmt.run(model, batch.to(dtype=torch.float32))[:, 0].double()
    scalars = {
        f"{tag}_depth{depth}_final_train_loss": hist[-1]["loss"],
        f"{tag}_depth{depth}_steps_per_s": hist[-1]["steps_per_s"],
    }
    return {f"train_loss_{tag}_depth{depth}": loss.to_json()}, scalars, w_hat


def match_depths(tag, depths, tf_err, tf_exc, tf_sub, newton_err, gd_err, cons):
    """Each trained depth's mean distance to w_N matched to damped-Newton and GD steps (log-
    interpolated) and to construction layers; "better per layer" when a trained model is closer
    to w_N than the construction with as many layers (floor(depth / blocks per step) Newton
    steps), for every k. Returns (curves, scalars)."""
    scalars, matched, better = {}, [], []
    for i, depth in enumerate(depths):
        pre = f"{tag}_depth{depth}"
        scalars[f"{pre}_w_error"], scalars[f"{pre}_excess_loss"] = tf_err[i], tf_exc[i]
        matched.append(matched_steps(newton_err, tf_err[i]))
        scalars[f"{pre}_newton_steps_matched"] = matched[-1]
        gd = matched_steps(gd_err, tf_err[i])
        if gd is not None:
            scalars[f"{pre}_gd_steps_matched"] = gd
        for k, (lps, err) in cons.items():
            T = next((T for T, e in enumerate(err) if e <= tf_sub[i]), None)
            if T is not None:
                scalars[f"{pre}_construction_layers_matched_k{k}"] = T * lps
            better.append(tf_sub[i] < err[min(depth // lps, len(err) - 1)])
    label = "damped-Newton steps with the same ‖w − w_N‖²/d"
    curves = {
        f"transformer_newton_steps_matched_{tag}": Curve(depths, matched, "layers", label).to_json()
    }
    scalars[f"{tag}_trained_better_per_layer_than_construction"] = float(all(better))
    return curves, scalars


def plot_depth_vs_newton(cfg: GiannouConfig, kappa: float, curves: dict, out: Path) -> Path:
    tag = F.kappa_tag(kappa)
    xmax = max(max(cfg.training.depths), cfg.newton_steps)
    path = out / f"depth_vs_newton_{tag}.png"
    return newton_depth_figure(curves, tag, F.ks_of(curves, tag), kappa, xmax, path)


# --- the experiment ------------------------------------------------------------------------------


@EXPERIMENTS.register("giannou2025-newton")
class Giannou2025(Experiment):
    """Newton's method in context for logistic regression (Giannou et al. 2025)

    Giannou, Yang, Wang, Papailiopoulos, Lee, *How Well Can Transformers Emulate In-context Newton's
    Method?*, AISTATS 2025"""

    cost = {"quick": "~3 min on 2 CPU cores", "full": "~1 GPU-hour"}
    profiles = PROFILES

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    def smoke(self, cfg: GiannouConfig) -> dict:
        c, t = cfg.construction, cfg.training
        return {
            "eval_prompts": 8,
            "construction.prompts": 2,
            "construction.table_prompts": 2,
            "construction.steps": 3,  # Newton steps of the per-width figure (3: the check's T)
            "construction.table_steps": 1,  # Newton steps of the depth table
            # fewer models and widths, every stage still run: the first and last condition
            # number, depth, width and Newton–Schulz k of the profile
            "condition_numbers": ends(cfg.condition_numbers),
            "training.depths": ends(t.depths),
            "construction.widths": ends(c.widths),
            "construction.newton_schulz_steps": ends(c.newton_schulz_steps),
        }

    def run(self, cfg: GiannouConfig, out: Path, device: str, quiet: bool) -> Result:
        def say(msg):
            if not quiet:
                print(f"giannou2025: {msg}", file=sys.stderr, flush=True)

        dev = resolve_device(device)
        c = cfg.construction
        say(f"construction: {c.steps} Newton steps at widths {list(c.widths)}")
        curves, scalars = construction_widths(cfg, out)
        figures = [out / "construction_vs_damped_newton.png"]
        for kappa in cfg.condition_numbers:
            c_k, s_k = depth_vs_newton(cfg, kappa, dev, out, say)
            curves.update(c_k)
            scalars.update(s_k)
            figures.append(plot_depth_vs_newton(cfg, kappa, curves, out))
        losses = {k: v for k, v in curves.items() if k.startswith("train_loss")}
        title = "training loss: MSE of the read-out w against w_N"
        figures.append(plot_curves(losses, out / "training_loss.png", logy=True, title=title))
        comparison, notes = report(cfg, scalars, curves)
        return Result(curves, scalars, dict(F.PAPER), figures, comparison, notes=notes)
