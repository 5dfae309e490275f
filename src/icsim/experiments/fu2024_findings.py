"""Fu et al. 2024's claims as data: the paper's numbers, the findings (each a claim with the
criterion on our scalars that decides it) and the rows of "our numbers beside the paper's"
(PAPERS.md §1). Declarations only; `fu2024.py` measures the scalars they read."""

from __future__ import annotations

from icsim.analysis.report import Comparison, Finding, fmt

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


def findings(cfg) -> list[Finding]:
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


def comparisons(cfg) -> list[Comparison]:
    P, sim, wsim = PAPER, "similarity_transformer_", "similarity_induced_weights_transformer_"
    gd_steps = cfg.algorithms["gradient_descent"]["steps"]
    grid = f"grid {gd_steps[1]}…{gd_steps[-1]}: its end is a lower bound"
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


COVARIANCE = {
    "two_level": "Fu et al.'s: Σ = U diag(λ) Uᵀ per prompt, U Haar, λ = 1 on ⌊d/2⌋ directions and "
    "1/κ on the rest (their scale matrix: √κ on d/2 directions)",
    "geometric": "Σ = U diag(λ) Uᵀ per prompt, U Haar, λ geometric from 1 down to 1/κ over all d "
    "directions (not the paper's)",
    "linear": "Σ = U diag(λ) Uᵀ per prompt, U Haar, λ linear from 1 down to 1/κ (not the paper's)",
}
