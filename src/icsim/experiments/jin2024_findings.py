"""What jin2024's report shows, as a pure function of the config and the measured numbers: the
papers' entries, the findings (each a claim with the criterion on our scalars that decides it),
the rows of "our numbers beside the papers'", the figures, and `report`, which fills
`jin2024.md` with them. `jin2024.py` measures."""

from __future__ import annotations

import math
from pathlib import Path

from icsim.analysis.plots import plot_panels
from icsim.analysis.report import Comparison, Finding, fill_beside, fmt, judge_all

REGIMES = ("low_snr", "high_snr")
METHODS = ("transformer", "em", "gradient_em", "oracle", "least_squares")

PAPER = {
    "slope_low_snr": -0.25,  # Õ((d/n)^{1/4}) against the oracle at low SNR (Jin et al. 2024)
    "slope_high_snr": -0.5,  # Õ(√(d/n)) at high SNR
    "transformer_less_init_sensitive": "yes (no sensitivity to initialisation, unlike EM)",
    "per_prompt_posterior_mean": "transformers match the Bayes-optimal posterior mean (Pathak)",
}


# -- figures, findings, report -------------------------------------------------------------------

LINE = {"marker": "."}


def figures(cfg, curves: dict, out: Path) -> list[Path]:
    def panel(regime, keys, ylabel, **kw):
        snr = cfg.snrs[REGIMES.index(regime)]
        lines = [(k, curves[f"error_vs_n_{k}_{regime}"], LINE) for k in keys]
        return {"lines": lines, "title": f"{regime.replace('_', ' ')} (SNR {snr:g})",
                "xlabel": "context pairs n", "ylabel": ylabel, **kw}  # fmt: skip

    figs = [
        plot_panels([panel(r, METHODS, "‖β̂ ∓ β*‖", xscale="log", yscale="log") for r in REGIMES],
                    out / "error_vs_n.png"),
        plot_panels([panel(r, ("em_init_spread", "transformer_seed_spread"),
                           "std of ‖β̂ ∓ β*‖ (EM: over inits; transformer: over seeds)")
                     for r in REGIMES], out / "init_sensitivity.png"),
        plot_panels([{"lines": [(r, curves[f"probe_error_by_layer_{r}"], LINE) for r in REGIMES],
                      "xlabel": "layer", "ylabel": "probe ‖β̂ ∓ β*‖", "yscale": "log",
                      "title": f"per-layer probes, n = {max(cfg.n_values)}"}],
                    out / "probe_layers.png"),
    ]  # fmt: skip
    if cfg.per_prompt is not None:
        keys = ("transformer", "posterior_mean", "least_squares", "oracle")
        lines = [(k, curves[f"per_prompt_mse_vs_k_{k}"], {}) for k in keys]
        excess = [("transformer − posterior mean",
                   curves["per_prompt_mse_vs_k_excess_over_posterior"], {})]  # fmt: skip
        figs.append(plot_panels(
            [{"lines": lines, "xlabel": "k", "ylabel": "MSE / E y²", "yscale": "log",
              "title": f"per prompt, m = {cfg.per_prompt.n_components}"},
             {"lines": excess, "xlabel": "k", "ylabel": "excess MSE / E y²"}],
            out / "per_prompt.png"))  # fmt: skip
    return figs


FINDINGS = [
    Finding(
        "transformer_near_em",
        "the trained transformer's estimate of β* is as accurate as EM's (Jin et al.: it "
        "implements EM)",
        "at high SNR and the largest n, the transformer's error up to sign is at most 2× EM's",
        lambda s: s["transformer_error_nmax_high_snr"] <= 2 * s["em_error_nmax_high_snr"],
        lambda s: (
            f"{fmt(s['transformer_error_nmax_high_snr'])} against EM's "
            f"{fmt(s['em_error_nmax_high_snr'])}"
        ),
        needs=("transformer_error_nmax_high_snr", "em_error_nmax_high_snr"),
    ),
    Finding(
        "high_snr_rate",
        "at high SNR the error falls as √(d/n) (log–log slope −1/2)",
        "the transformer's fitted slope at high SNR lies in [−0.7, −0.3]",
        lambda s: -0.7 <= s["slope_transformer_high_snr"] <= -0.3,
        lambda s: (
            f"slope {fmt(s['slope_transformer_high_snr'])} (EM "
            f"{fmt(s['slope_em_high_snr'])}, oracle {fmt(s['slope_oracle_high_snr'])})"
        ),
        needs=("slope_transformer_high_snr",),
    ),
    Finding(
        "low_snr_slower",
        "at low SNR the error falls more slowly, as (d/n)^{1/4} (slope −1/4 against −1/2)",
        "EM's fitted slope at low SNR is shallower than at high SNR by at least 0.1",
        lambda s: s["slope_em_low_snr"] >= s["slope_em_high_snr"] + 0.1,
        lambda s: (
            f"EM slopes {fmt(s['slope_em_low_snr'])} (low) and "
            f"{fmt(s['slope_em_high_snr'])} (high); transformer "
            f"{fmt(s['slope_transformer_low_snr'])} "
            f"and {fmt(s['slope_transformer_high_snr'])}"
        ),
        needs=("slope_em_low_snr", "slope_em_high_snr"),
    ),
    Finding(
        "less_init_sensitive",
        "the transformer does not share EM's sensitivity to initialisation",
        "at high SNR, the transformer's spread over training seeds (mean over n) is below EM's "
        "spread over random initialisations, and its error at the largest n is below 0.9 (a "
        "constant β̂ = 0 scores 1 with no spread at all)",
        lambda s: (
            s["transformer_seed_spread_high_snr"] < s["em_init_spread_high_snr"]
            and s["transformer_error_nmax_high_snr"] < 0.9
        ),
        lambda s: (
            f"{fmt(s['transformer_seed_spread_high_snr'])} against "
            f"{fmt(s['em_init_spread_high_snr'])}, error "
            f"{fmt(s['transformer_error_nmax_high_snr'])}"
        ),
        needs=(
            "transformer_seed_spread_high_snr",
            "em_init_spread_high_snr",
            "transformer_error_nmax_high_snr",
        ),
    ),
    Finding(
        "per_prompt_bayes",
        "with m fixed vectors the transformer predicts as the Bayes-optimal posterior mean (Pathak "
        "et al.)",
        "its excess MSE over the posterior mean at the last prefix is at most 0.05 E y²",
        lambda s: s["per_prompt_excess_over_posterior_last"] <= 0.05,
        lambda s: (
            f"excess {fmt(s['per_prompt_excess_over_posterior_last'])} E y² (posterior "
            f"mean {fmt(s['per_prompt_posterior_mean_last'])}, least squares "
            f"{fmt(s['per_prompt_least_squares_last'])})"
        ),
        needs=("per_prompt_excess_over_posterior_last",),
    ),
]


def report(cfg, scalars: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the numbers."""
    comparison = [
        Comparison(f"slope of {m} error vs n, {r.replace('_', ' ')}", f"slope_{m}_{r}",
                   PAPER[f"slope_{r}"], "theory (log–log)")
        for r in REGIMES for m in ("transformer", "em", "oracle")
    ] + [
        Comparison("transformer spread over training seeds, high SNR",
                   "transformer_seed_spread_high_snr", PAPER["transformer_less_init_sensitive"]),
        Comparison("EM spread over random initialisations, high SNR", "em_init_spread_high_snr",
                   "—"),
        Comparison("per prompt: excess MSE over the posterior mean (last k, / E y²)",
                   "per_prompt_excess_over_posterior_last", PAPER["per_prompt_posterior_mean"]),
    ]  # fmt: skip
    verdicts = judge_all(FINDINGS, scalars)
    t = cfg.train
    ctx = {"steps": t.steps, "n_layer": t.n_layer, "n_head": t.n_head,
           "widths": ", ".join(map(str, cfg.widths)), "seeds": len(t.seeds),
           "n_values": ", ".join(map(str, cfg.n_values)), "n_max": max(cfg.n_values),
           "attention": cfg.attention, "eval_prompts": cfg.eval_prompts,
           "init_seeds": cfg.init_seeds, "em_steps": cfg.em_steps,
           "snr_low": cfg.snrs[0], "snr_high": cfg.snrs[1], "sigma": cfg.noise_std,
           "T": cfg.gradient_em_inner_steps, "alpha": cfg.gradient_em_step_size}  # fmt: skip
    pp = cfg.per_prompt
    ctx |= {"m": pp.n_components, "pp_sigma": pp.noise_std, "pp_points": pp.n_points,
            "pp_attention": pp.attention} if pp else dict.fromkeys(
                ("m", "pp_sigma", "pp_points", "pp_attention"), "-")  # fmt: skip
    full = {k: scalars.get(k, math.nan) for k in TEMPLATE_SCALARS}
    notes = fill_beside(
        Path(__file__).with_name("jin2024.md"), {**full, **scalars, **ctx}, verdicts
    )
    return comparison, list(verdicts.values()), notes


TEMPLATE_SCALARS = (
    "zero_prediction_mse_high_snr", "label_aware_mse_transformer_high_snr",
    "label_aware_mse_em_high_snr", "label_aware_mse_oracle_high_snr",
    "per_prompt_excess_mean", "layer0_matched_gradient_em_steps_high_snr",
)  # fmt: skip
