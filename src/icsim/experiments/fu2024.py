"""Fu, Chen, Jia, Sharan 2024, "Transformers learn to achieve second-order convergence rates for
in-context linear regression": layer by layer, a trained transformer progresses like iterative
Newton (matched step linear in the layer), not like gradient descent (matched step exponential in
the layer); an LSTM does not improve across its layers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from icsim.analysis.evaluation import in_chunks, model_prefix_predictions
from icsim.analysis.matching import (
    at_grid_end,
    best_step_per_prompt,
    error_cosine_per_prompt,
    induced_weights,
    match_induced_weights,
    match_layers,
)
from icsim.analysis.metrics import normalised_squared_error, paired_difference
from icsim.analysis.plots import plot_curves, plot_heatmap
from icsim.analysis.probes import fit_probes, layer_predictions
from icsim.analysis.report import Comparison, Curve, Finding, fill_beside, fmt, judge_all
from icsim.experiments.base import (
    EXPERIMENTS,
    Experiment,
    Result,
    full_train,
    quick_train,
    with_device,
)
from icsim.training import Curriculum, TrainConfig, Trainer

# Fu et al. 2024 §4 and their code: GD at lr 0.01 on a log grid of steps 2⁰…2¹², Newton steps
# 1–23 (step 0 = the initialisation: predicts 0), online GD on the same log grid.
GD_STEPS = [0] + [2**i for i in range(13)]
NEWTON_STEPS = list(range(24))
ALGORITHMS = {
    "iterative_newton": {"algorithm": "iterative_newton", "steps": NEWTON_STEPS},
    "gradient_descent": {
        "algorithm": "gradient_descent",
        "params": {"step_size": 0.01},
        "steps": GD_STEPS,
    },
    "online_gradient_descent": {
        "algorithm": "online_gradient_descent",
        "params": {"step_size": 0.01},
        "steps": GD_STEPS,
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
        transformer=full_train(),
        lstm=full_train(model="lstm", n_layer=10, compile=False),
        condition_numbers=(1.0, 100.0),
    ),
    # 2 CPU cores: d = 5, 16 points, an 8-layer 64-wide transformer and a 4-layer LSTM; κ = 100
    # too, where GD (slow on the λ_max/κ directions) and Newton part ways (issue 23 item 7).
    "quick": FuConfig(
        transformer=quick_train(
            n_layer=8,
            steps=4000,
            curriculum=Curriculum(
                dims_start=2,
                dims_end=5,
                points_start=6,
                points_end=16,
                points_inc=2,
                interval=400,
            ),
        ),
        lstm=quick_train(
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

PAPER = {  # PAPERS.md §1 (d = 20, 12 layers)
    "matched_newton_step_by_layer": [1, 1, 3, 5, 8, 10, 14, 17, 20, 21, 21, 21],
    "similarity_transformer_newton": 0.991,
    "similarity_transformer_gd": 0.957,
    "similarity_transformer_online_gd": 0.806,
    "similarity_lstm_newton": 0.920,
    "similarity_lstm_gd": 0.916,
    "similarity_lstm_online_gd": 0.954,
    "gd_steps_matching_last_layer": "≥ 1200",
    "kappa100_matched_newton_steps": 21,
    "kappa100_gd_steps": "about 2000",
    "induced_weights": "layers match Newton's iterations (a figure, no table)",
}


def suffix(kappa: float) -> str:
    return "" if kappa == 1 else f"_kappa{kappa:g}"


def _train(cfg: TrainConfig, kappa, spacing, out: Path, device: str, quiet: bool) -> Trainer:
    params = dict(cfg.task_params)
    if kappa != 1:
        params.update(condition_number=kappa, eigenvalue_spacing=spacing)
    trainer = Trainer(with_device(replace(cfg, task_params=params), device), out, quiet=quiet)
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
    probes = fit_probes(
        trainer.model,
        trainer.fmt,
        trainer.task,
        n_prompts=cfg.probe_prompts,
        n_points=n,
        generator=gp,
        device=device,
    )
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
    matches = match_layers(layers, batch, cfg.algorithms)
    for name, m in matches.items():
        x = list(range(1, len(m["matched_step"])))
        curves[f"{tag}matched_step_{name}{sfx}"] = Curve(
            x, m["matched_step"][1:], "layer", "best-matching algorithm step"
        ).to_json()
        s[f"similarity_{who}_{name}{sfx}"] = m["best_similarity"][-1]
        if who == "transformer":
            curves[f"similarity_{name}{sfx}"] = Curve(
                x, m["best_similarity"][1:], "layer", "similarity of errors (best step)"
            ).to_json()
            s[f"matched_step_last_layer_{name}{sfx}"] = m["matched_step"][-1]
            end = at_grid_end(m["matched_step"][1:], m["steps"])
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
    gd_sim = error_cosine_per_prompt(ideal, gd["trajectory"], batch.ys).mean(-1).max().item()
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
        best_step_per_prompt(last, matches[k], target)
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

    w_model = induced_weights(predict, batch, d)  # [L+1, B, d]
    return match_induced_weights(w_model, batch, d, cfg.algorithms), w_model[-1]


@EXPERIMENTS.register("fu2024-second-order")
class Fu2024(Experiment):
    name = "fu2024-second-order"
    title = "Transformers match iterative Newton layer by layer (Fu et al. 2024)"
    cost = {"quick": "~14 min on 2 CPU cores", "full": "~15 GPU-hours (two 500k-step models)"}
    citation = (
        "Fu, Chen, Jia, Sharan, *Transformers learn to achieve second-order convergence rates "
        "for in-context linear regression*, NeurIPS 2024"
    )
    profiles = PROFILES

    def run(self, cfg: FuConfig, out: Path, device: str, quiet: bool) -> Result:
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
            figures += similarity_figures(matches, out, sfx)
            figures.append(matched_steps_figure(curves, scalars, out, kappa))
        if cfg.lstm is not None:
            lstm = _train(cfg.lstm, 1.0, spacing, out / "train-lstm", device, quiet)
            c, s, _ = measure(lstm, cfg, "lstm", "", device)
            curves.update(c)
            scalars.update(s)
        layer_curves = {k: v for k, v in curves.items() if k.startswith("error_by_layer")}
        figures.append(
            plot_curves(
                layer_curves,
                out / "error_by_layer.png",
                logy=True,
                title="error of each layer's read-out",
            )
        )
        return Result(curves, scalars, PAPER, figures, *report(cfg, scalars, curves))

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    smoke = {
        "eval_prompts": 8,
        "probe_prompts": 64,
    }


def similarity_figures(matches: dict, out: Path, sfx: str) -> list:
    return [
        plot_heatmap(
            m["similarity"][1:].double().cpu().numpy(),
            out / f"similarity_{name}{sfx}.png",
            xlabel=f"{LABELS.get(name, name)} step",
            ylabel="layer",
            xticks=m["steps"],
            yticks=list(range(1, len(m["matched_step"]))),
            title=f"similarity of errors: transformer layers vs {name}{sfx}",
        )
        for name, m in matches.items()
    ]


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


def findings(cfg: FuConfig) -> list[Finding]:
    """The paper's findings, each with the criterion on our scalars that decides it."""
    out = []
    for kappa in cfg.condition_numbers:
        x = suffix(kappa)
        at = f" (κ = {kappa:g})"
        out += [
            Finding(
                f"newton_linear{x}",
                f"the best-matching Newton step grows with the layer, linearly{at}",
                "matched step non-decreasing in the layer, slope > 0 and linear-fit R² ≥ 0.8",
                lambda s, x=x: (
                    s[f"newton_match_non_decreasing{x}"] == 1
                    and s[f"newton_match_slope{x}"] > 0
                    and s[f"newton_match_linear_r2{x}"] >= 0.8
                ),
                lambda s, x=x: (
                    f"non-decreasing: {'yes' if s[f'newton_match_non_decreasing{x}'] else 'no'}, "
                    f"R² = {fmt(s[f'newton_match_linear_r2{x}'])}, "
                    f"slope {fmt(s[f'newton_match_slope{x}'])} steps per layer"
                ),
                needs=(f"newton_match_linear_r2{x}", f"newton_match_non_decreasing{x}"),
            ),
            Finding(
                f"errors_closer_to_newton{x}",
                f"the last layer's errors are more similar to Newton's than to GD's{at}",
                "the 95% bootstrap interval over prompts of the per-prompt difference "
                "(Newton − GD similarity, each at its best step) lies above 0",
                lambda s, x=x: s[f"similarity_margin_newton_minus_gd_low{x}"] > 0,
                lambda s, x=x: (
                    _margin_text(
                        s, "similarity_transformer_", "similarity_margin_newton_minus_gd", x
                    )
                    + "; a last layer that were exactly Newton would beat GD by "
                    + fmt(s.get(f"similarity_margin_ceiling_newton_minus_gd{x}", float("nan")))
                    + " here"
                ),
                needs=(f"similarity_margin_newton_minus_gd_low{x}",),
            ),
            Finding(
                f"weights_closer_to_newton{x}",
                f"the last layer's induced weights are more similar to Newton's than to GD's{at}",
                "the 95% bootstrap interval over prompts of the per-prompt difference lies above 0",
                lambda s, x=x: s[f"similarity_induced_weights_margin_newton_minus_gd_low{x}"] > 0,
                lambda s, x=x: _margin_text(
                    s,
                    "similarity_induced_weights_transformer_",
                    "similarity_induced_weights_margin_newton_minus_gd",
                    x,
                ),
                needs=(f"similarity_induced_weights_margin_newton_minus_gd_low{x}",),
            ),
            Finding(
                f"gd_needs_more_steps{x}",
                f"GD needs at least 10× more steps than Newton to match the last layer{at} "
                "(the paper: ≥ 1200 vs 21)",
                "GD's matched step ≥ 10 × Newton's (a GD step at the grid's end is a lower bound)",
                lambda s, x=x: s[f"gd_over_newton_steps_last_layer{x}"] >= 10,
                lambda s, x=x: (
                    f"GD step {_bound(s, 'gradient_descent', x)} vs Newton step "
                    f"{s[f'matched_step_last_layer_iterative_newton{x}']}: ratio "
                    f"{'≥ ' if s[f'matched_step_at_grid_end_gradient_descent{x}'] else ''}"
                    f"{fmt(s[f'gd_over_newton_steps_last_layer{x}'])}"
                ),
                needs=(f"gd_over_newton_steps_last_layer{x}",),
            ),
            Finding(
                f"gd_exponential{x}",
                f"the best-matching GD step grows exponentially in the layer{at}",
                "log-linear fit R² ≥ 0.8 and above the linear fit's, with at most one layer at "
                "the grid's end (beyond it the step is only a lower bound)",
                lambda s, x=x: (
                    s[f"gd_match_exponential_r2{x}"] >= 0.8
                    and s[f"gd_match_exponential_r2{x}"] > s[f"gd_match_linear_r2{x}"]
                    and s[f"layers_at_grid_end_gradient_descent{x}"] <= 1
                ),
                lambda s, x=x: (
                    f"exponential-fit R² {fmt(s[f'gd_match_exponential_r2{x}'])}, "
                    f"linear-fit R² {fmt(s[f'gd_match_linear_r2{x}'])}, "
                    f"{s[f'layers_at_grid_end_gradient_descent{x}']} layers at the grid's end"
                ),
                needs=(f"gd_match_exponential_r2{x}", f"gd_match_linear_r2{x}"),
            ),
        ]
    out += [
        Finding(
            "lstm_does_not_improve",
            "an LSTM's error does not improve across its layers while the transformer's does",
            "LSTM's first-to-last-layer error ratio ≤ 1.5 and the transformer's ≥ 3",
            lambda s: (
                s["error_ratio_first_to_last_layer_lstm"] <= 1.5
                and s["error_ratio_first_to_last_layer_transformer"] >= 3
            ),
            lambda s: (
                f"error ratio first/last layer: LSTM "
                f"{fmt(s['error_ratio_first_to_last_layer_lstm'])}, transformer "
                f"{fmt(s['error_ratio_first_to_last_layer_transformer'])}"
            ),
            needs=("error_ratio_first_to_last_layer_lstm",),
        ),
        Finding(
            "lstm_like_online_gd",
            "the LSTM's errors are closest to online GD's (the paper: 0.954 vs 0.920 Newton, "
            "0.916 GD)",
            "similarity to online GD the largest of the three",
            lambda s: (
                s["similarity_lstm_online_gradient_descent"]
                > max(s["similarity_lstm_iterative_newton"], s["similarity_lstm_gradient_descent"])
            ),
            lambda s: (
                "LSTM similarity: online GD "
                f"{fmt(s['similarity_lstm_online_gradient_descent'])}, Newton "
                f"{fmt(s['similarity_lstm_iterative_newton'])}, GD "
                f"{fmt(s['similarity_lstm_gradient_descent'])}"
            ),
            needs=("similarity_lstm_online_gradient_descent",),
        ),
    ]
    return out


def _bound(s: dict, name: str, x: str) -> str:
    ge = "≥ " if s.get(f"matched_step_at_grid_end_{name}{x}") else ""
    return f"{ge}{s[f'matched_step_last_layer_{name}{x}']}"


def _margin_text(s: dict, sim: str, key: str, x: str) -> str:
    return (
        f"similarity {fmt(s[f'{sim}iterative_newton{x}'])} (Newton) vs "
        f"{fmt(s[f'{sim}gradient_descent{x}'])} (GD); per-prompt difference "
        f"{fmt(s[f'{key}{x}'])}, 95% interval [{fmt(s[f'{key}_low{x}'])}, "
        f"{fmt(s[f'{key}_high{x}'])}]"
    )


def comparisons(cfg: FuConfig) -> list[Comparison]:
    P, sim, wsim = PAPER, "similarity_transformer_", "similarity_induced_weights_transformer_"
    grid = f"grid {GD_STEPS[1]}…{GD_STEPS[-1]}: its end is a lower bound"
    rows = [
        ("best-matching Newton step per layer", "matched_step_iterative_newton",
         P["matched_newton_step_by_layer"], "paper: 12 layers, d = 20"),
        ("linear fit of matched Newton step vs layer: R²", "newton_match_linear_r2",
         "linear (R² not reported)", "criterion: ≥ 0.8"),
        ("best-matching GD step per layer", "matched_step_gradient_descent",
         "hundreds, then ≥ 1200", grid),
    ]  # fmt: skip
    for kappa in cfg.condition_numbers:
        x, k, one = suffix(kappa), f"κ = {kappa:g}: ", kappa == 1
        rows += [
            (f"{k}Newton steps matching the last layer",
             f"matched_step_last_layer_iterative_newton{x}",
             P["matched_newton_step_by_layer"][-1] if one else P["kappa100_matched_newton_steps"]),
            (f"{k}GD steps matching the last layer", f"matched_step_last_layer_gradient_descent{x}",
             P["gd_steps_matching_last_layer"] if one else P["kappa100_gd_steps"], "GD at lr 0.01",
             f"matched_step_at_grid_end_gradient_descent{x}"),
            (f"{k}similarity of errors, transformer–Newton", f"{sim}iterative_newton{x}",
             P["similarity_transformer_newton"] if one else "not reported", "last layer, best"),
            (f"{k}similarity of errors, transformer–GD", f"{sim}gradient_descent{x}",
             P["similarity_transformer_gd"] if one else "not reported"),
            (f"{k}similarity of errors, transformer–online GD", f"{sim}online_gradient_descent{x}",
             P["similarity_transformer_online_gd"] if one else "not reported"),
            (f"{k}Newton − GD similarity of errors, 95% interval low end",
             f"similarity_margin_newton_minus_gd_low{x}", "> 0 (0.991 − 0.957)",
             "per-prompt differences, bootstrap"),
            (f"{k}Newton − GD similarity, if the last layer were exactly Newton",
             f"similarity_margin_ceiling_newton_minus_gd{x}", "", "what this scale can show"),
            (f"{k}similarity of induced weights, transformer–Newton", f"{wsim}iterative_newton{x}",
             P["induced_weights"], "last layer, best step, context of d"),
            (f"{k}similarity of induced weights, transformer–GD", f"{wsim}gradient_descent{x}",
             P["induced_weights"]),
        ]  # fmt: skip
    if cfg.lstm is not None:
        rows += [
            ("similarity of errors, LSTM–Newton", "similarity_lstm_iterative_newton",
             P["similarity_lstm_newton"]),
            ("similarity of errors, LSTM–GD", "similarity_lstm_gradient_descent",
             P["similarity_lstm_gd"]),
            ("similarity of errors, LSTM–online GD", "similarity_lstm_online_gradient_descent",
             P["similarity_lstm_online_gd"]),
            ("error ratio first/last layer, LSTM", "error_ratio_first_to_last_layer_lstm",
             "≈ 1 (no improvement)"),
            ("error ratio first/last layer, transformer",
             "error_ratio_first_to_last_layer_transformer", "large"),
        ]  # fmt: skip
    return [Comparison(*row) for row in rows]


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
        "gd_grid_end": GD_STEPS[-1],
        "weight_queries": cfg.weight_queries or 4 * t.dim,
    }
    notes = fill_beside(__file__, {**scalars, **ctx}, verdicts)
    return comparisons(cfg), list(verdicts.values()), notes


COVARIANCE = {
    "two_level": "Fu et al.'s: Σ = U diag(λ) Uᵀ per prompt, U Haar, λ = 1 on ⌊d/2⌋ directions and "
    "1/κ on the rest (their scale matrix: √κ on d/2 directions)",
    "geometric": "Σ = U diag(λ) Uᵀ per prompt, U Haar, λ geometric from 1 down to 1/κ over all d "
    "directions (not the paper's)",
    "linear": "Σ = U diag(λ) Uᵀ per prompt, U Haar, λ linear from 1 down to 1/κ (not the paper's)",
}
