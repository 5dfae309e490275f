"""Fu, Chen, Jia, Sharan 2024, "Transformers learn to achieve second-order convergence rates for
in-context linear regression": layer by layer, a trained transformer progresses like iterative
Newton (matched step linear in the layer), not like gradient descent (matched step exponential in
the layer); an LSTM does not improve across its layers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from icsim.analysis import matching as M
from icsim.analysis.evaluation import in_chunks, model_prefix_predictions
from icsim.analysis.metrics import normalised_squared_error, paired_difference
from icsim.analysis.plots import plot_curves
from icsim.analysis.probes import fit_probes, layer_predictions
from icsim.analysis.report import Curve, fill_beside, judge_all
from icsim.experiments import base
from icsim.experiments.fu2024_findings import COVARIANCE, PAPER, comparisons, findings, suffix
from icsim.training import Curriculum, TrainConfig, Trainer

# Fu et al. 2024 §4 and their code: GD at lr 0.01 on a log grid of steps 2⁰…2¹², Newton steps
# 1–23 (step 0 = the initialisation: predicts 0), online GD on the same log grid.
GD_STEPS = [0] + [2**i for i in range(13)]
NEWTON_STEPS = list(range(24))
ALGORITHMS = {
    "iterative_newton": {"algorithm": "iterative_newton", "steps": NEWTON_STEPS},
    **{
        name: {"algorithm": name, "params": {"step_size": 0.01}, "steps": GD_STEPS}
        for name in ("gradient_descent", "online_gradient_descent")
    },
}
LABELS = {
    "iterative_newton": "iterative Newton",
    "gradient_descent": "gradient descent",
    "online_gradient_descent": "online gradient descent",
}


@dataclass(frozen=True)
class FuConfig:
    transformer: TrainConfig = field(default_factory=TrainConfig)
    lstm: TrainConfig | None = None  # the LSTM baseline (None: skip it)
    condition_numbers: tuple[float, ...] = (1.0,)  # one trained transformer per κ of Σ
    # Σ for κ > 1: "two_level" is Fu et al.'s (λ_max on d/2 directions, λ_max/κ on the rest);
    # "geometric" spreads the eigenvalues over all d directions.
    eigenvalue_spacing: str = "two_level"
    eval_prompts: int = 320  # their code: 320 sequences
    probe_prompts: int = 4096  # prompts for the per-layer ridge read-outs
    weight_queries: int = 0  # Q ≫ d probe queries for the induced weights (0: 4d)
    eval_seed: int = 2024
    algorithms: dict = field(default_factory=lambda: ALGORITHMS)


PROFILES = {
    # The paper: GPT-2 12 layers, 8 heads, width 256, d = 20, 41 points, Garg et al.'s training
    # recipe (curriculum, batch 64, Adam 1e-4, 500k steps); LSTM 10 layers; κ = 1 and κ = 100.
    "full": FuConfig(
        transformer=base.full_train(),
        lstm=base.full_train(model="lstm", n_layer=10, compile=False),
        condition_numbers=(1.0, 100.0),
    ),
    # 2 CPU cores: d = 5, 16 points, an 8-layer 64-wide transformer and a 4-layer LSTM; κ = 100
    # too, where GD (slow on the λ_max/κ directions) and Newton part ways (issue 23 item 7).
    "quick": FuConfig(
        transformer=base.quick_train(
            n_layer=8,
            steps=4000,
            curriculum=Curriculum(
                dims_start=2, dims_end=5, points_start=6, points_end=16, points_inc=2, interval=400
            ),
        ),
        lstm=base.quick_train(
            model="lstm",
            n_layer=4,
            n_head=8,
            steps=1500,
            warmup_steps=100,
            checkpoint_every=1500,
            curriculum=Curriculum(
                enabled=False, dims_start=5, dims_end=5, points_start=16, points_end=16
            ),
        ),
        condition_numbers=(1.0, 100.0),
    ),
}


def _train(cfg: TrainConfig, kappa, spacing, out: Path, device: str, quiet: bool) -> Trainer:
    params = dict(cfg.task_params)
    if kappa != 1:
        params.update(condition_number=kappa, eigenvalue_spacing=spacing)
    trainer = Trainer(base.with_device(replace(cfg, task_params=params), device), out, quiet=quiet)
    trainer.train()
    return trainer


def _layers(trainer: Trainer, cfg: FuConfig, device: str):
    """(held-out prompts, per-layer predictions [L+1, B, n], probes): each layer's prediction for
    every prefix through a ridge read-out fitted on fresh prompts (Fu et al. re-train a read-out
    per layer by SGD; the closed form does the same)."""
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed)
    n = trainer.cfg.n_points
    batch = trainer.task.sample(cfg.eval_prompts, n, generator=g, device=device)
    gp = torch.Generator(device=device).manual_seed(cfg.eval_seed + 1)
    probes = fit_probes(trainer.model, trainer.fmt, trainer.task, n_prompts=cfg.probe_prompts,
                        n_points=n, generator=gp, device=device)  # fmt: skip
    return batch, layer_predictions(trainer.model, trainer.fmt, batch, probes), probes


def measure(trainer: Trainer, cfg: FuConfig, who: str, sfx: str, device: str):
    """Curves and scalars of one trained model: the error of every layer, its best-matching step
    of every algorithm (similarity of errors, Fu et al. 2024 §4) and, for the transformer, the
    margin of Newton over GD prompt by prompt and the induced weights' similarity."""
    batch, layers, probes = _layers(trainer, cfg, device)
    d, curves, s = batch.dim, {}, {}
    tag = "" if who == "transformer" else "lstm_"
    boot = torch.Generator(device=device).manual_seed(cfg.eval_seed + 3)
    per_layer = normalised_squared_error(layers.double(), batch.ys.double(), d).mean(-1).T
    curves[f"error_by_layer_{who}{sfx}"] = Curve.of_prompts(
        per_layer, range(layers.shape[0]), "layer", f"normalised squared error ({who})", boot
    ).to_json()
    c = curves[f"error_by_layer_{who}{sfx}"]["y"]
    s[f"error_ratio_first_to_last_layer_{who}{sfx}"] = c[1] / c[-1]
    matches = M.match_layers(layers, batch, cfg.algorithms)
    for name, m in matches.items():
        step, sim = M.match_curves(m)
        curves[f"{tag}matched_step_{name}{sfx}"] = step.to_json()
        s[f"similarity_{who}_{name}{sfx}"] = m["best_similarity"][-1]
        if who == "transformer":
            curves[f"similarity_{name}{sfx}"] = sim.to_json()
            s[f"matched_step_last_layer_{name}{sfx}"] = m["matched_step"][-1]
            end = M.at_grid_end(m["matched_step"][1:], m["steps"])
            s[f"matched_step_at_grid_end_{name}{sfx}"] = float(end[-1])
            s[f"layers_at_grid_end_{name}{sfx}"] = sum(end)
    if who != "transformer":
        return curves, s, matches
    final = model_prefix_predictions(trainer.model, trainer.fmt, batch)
    s[f"final_layer_error{sfx}"] = (final - batch.ys).square().mean().item() / d
    s.update(fits(matches, sfx))
    s.update(margins(matches, layers[-1], batch.ys, "similarity_margin_newton_minus_gd", sfx, boot))
    # the most this measure can show here: the margin of a last layer that were exactly Newton
    newton, gd = matches["iterative_newton"], matches["gradient_descent"]
    ideal = newton["trajectory"][int(newton["similarity"][-1].argmax())]
    gd_sim = M.error_cosine_per_prompt(ideal, gd["trajectory"], batch.ys).mean(-1).max().item()
    s[f"similarity_margin_ceiling_newton_minus_gd{sfx}"] = 1 - gd_sim
    w_matches, w_last = weights_matches(trainer, probes, cfg, device)
    for name, m in w_matches.items():
        s[f"similarity_induced_weights_transformer_{name}{sfx}"] = m["best_similarity"][-1]
        s[f"matched_step_induced_weights_{name}{sfx}"] = m["matched_step"][-1]
    key = "similarity_induced_weights_margin_newton_minus_gd"
    s.update(margins(w_matches, w_last, None, key, sfx, boot))
    return curves, s, matches


def fits(matches: dict, sfx: str) -> dict:
    newton, gd = matches["iterative_newton"], matches["gradient_descent"]
    steps = newton["matched_step"][1:]
    return {
        f"newton_match_linear_r2{sfx}": newton["fits"]["linear"]["r2"],
        f"newton_match_slope{sfx}": newton["fits"]["linear"]["slope"],
        f"gd_match_exponential_r2{sfx}": gd["fits"]["exponential"]["r2"],
        f"gd_match_linear_r2{sfx}": gd["fits"]["linear"]["r2"],
        f"newton_match_non_decreasing{sfx}": float(all(a <= b for a, b in zip(steps, steps[1:]))),
        f"gd_over_newton_steps_last_layer{sfx}": gd["matched_step"][-1] / max(steps[-1], 1),
    }


def margins(matches: dict, last, target, key: str, sfx: str, generator) -> dict:
    """Newton's similarity minus GD's at the last layer (each at its best step), prompt by
    prompt: mean, bootstrap 95% interval and spread."""
    newton, gd = (
        M.best_step_per_prompt(last, matches[k], target)
        for k in ("iterative_newton", "gradient_descent")
    )
    return {f"{key}{k}{sfx}": v for k, v in paired_difference(newton, gd, generator).items()}


def weights_matches(trainer: Trainer, probes, cfg: FuConfig, device: str):
    """Similarity of induced weights (Fu et al. 2024): each method's least-squares weights from
    its predictions on Q ≫ d queries after a context of d examples, compared by cosine. Returns
    (matches, the last layer's induced weights [B, d])."""
    d = trainer.cfg.dim
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 2)
    n = d + (cfg.weight_queries or 4 * d)
    batch = trainer.task.sample(cfg.eval_prompts, n, generator=g, device=device)

    def predict(bb):  # the B·Q copies, in chunks
        return in_chunks(
            lambda part: layer_predictions(trainer.model, trainer.fmt, part, probes), bb, 2048, 1
        )

    w_model = M.induced_weights(predict, batch, d)  # [L+1, B, d]
    return M.match_induced_weights(w_model, batch, d, cfg.algorithms), w_model[-1]


@base.EXPERIMENTS.register("fu2024-second-order")
class Fu2024(base.Experiment):
    """Transformers match iterative Newton layer by layer (Fu et al. 2024)

    Fu, Chen, Jia, Sharan, *Transformers learn to achieve second-order convergence rates for
    in-context linear regression*, NeurIPS 2024"""

    cost = {"quick": "~14 min on 2 CPU cores", "full": "~15 GPU-hours (two 500k-step models)"}
    profiles = PROFILES

    def run(self, cfg: FuConfig, out: Path, device: str, quiet: bool) -> base.Result:
        curves, scalars, figures = {}, {}, []
        spacing = cfg.eigenvalue_spacing
        for kappa in cfg.condition_numbers:
            sfx = suffix(kappa)
            tr = _train(
                cfg.transformer, kappa, spacing, out / f"train-transformer{sfx}", device, quiet
            )
            c, s, matches = measure(tr, cfg, "transformer", sfx, device)
            curves.update(c)
            scalars.update(s)
            for name, m in matches.items():
                path, label = out / f"similarity_{name}{sfx}.png", LABELS.get(name, name)
                title = f"similarity of errors: transformer layers vs {name}{sfx}"
                figures.append(M.plot_match(m, path, xlabel=f"{label} step", title=title))
            figures.append(matched_steps_figure(curves, scalars, out, kappa))
        if cfg.lstm is not None:
            lstm = _train(cfg.lstm, 1.0, spacing, out / "train-lstm", device, quiet)
            c, s, _ = measure(lstm, cfg, "lstm", "", device)
            curves.update(c)
            scalars.update(s)
        layer_curves = {k: v for k, v in curves.items() if k.startswith("error_by_layer")}
        title = "error of each layer's read-out"
        figures.append(
            plot_curves(layer_curves, out / "error_by_layer.png", logy=True, title=title)
        )
        return base.Result(curves, scalars, PAPER, figures, *report(cfg, scalars, curves))

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    # The step grids too: GD's runs to 4096 steps on every prefix were most of the smoke time.
    # The induced weights' queries: d + 1 (the fewest that determine ŵ) instead of 4d.
    def smoke(self, cfg: FuConfig) -> dict:
        return {
            "eval_prompts": 8,
            "probe_prompts": 64,
            "weight_queries": cfg.transformer.dim + 1,
            **{f"algorithms.{name}.steps": (0, 1, 2) for name in ALGORITHMS},
        }


def matched_steps_figure(curves: dict, s: dict, out: Path, kappa: float) -> Path:
    sfx = suffix(kappa)
    shown = {}
    for name in ("iterative_newton", "gradient_descent"):
        bound = " (≥: at the grid's end)" if s.get(f"layers_at_grid_end_{name}{sfx}") else ""
        shown[LABELS[name] + bound] = curves[f"matched_step_{name}{sfx}"]
    return plot_curves(
        shown,
        out / f"matched_steps{sfx}.png",
        logy=True,
        title=f"best-matching algorithm step per layer (κ = {kappa:g})",
    )


def report(cfg: FuConfig, scalars: dict, curves: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the measured
    numbers, so what the report concludes can be tested on numbers alone."""
    verdicts = judge_all(findings(cfg), scalars)
    t = cfg.transformer
    ctx = {
        "probe_prompts": cfg.probe_prompts,
        "eval_prompts": cfg.eval_prompts,
        "n_layer": t.n_layer,
        "n_embd": t.n_embd,
        "steps": t.steps,
        "dim": t.dim,
        "lstm_layers": cfg.lstm.n_layer if cfg.lstm else 0,
        "kappas": ", ".join(f"{k:g}" for k in cfg.condition_numbers),
        "covariance": COVARIANCE[cfg.eigenvalue_spacing],
        "gd_grid_end": cfg.algorithms["gradient_descent"]["steps"][-1],
        "weight_queries": cfg.weight_queries or 4 * t.dim,
    }
    notes = fill_beside(__file__, {**scalars, **ctx}, verdicts)
    return comparisons(cfg), list(verdicts.values()), notes
