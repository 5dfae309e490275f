"""What he2025-em-clustering's report says, as a pure function of the config and the measured
numbers: the paper's claims, the scalars read off the curves (`summarise`), the findings (each a
claim with the criterion on our scalars that decides it) and `report`, which fills
`he2025_clustering.md` with them. `he2025_clustering.py` measures."""

from __future__ import annotations

from pathlib import Path

from icsim.analysis import clustering_metrics as M
from icsim.analysis.report import Comparison, Finding, fill_beside, fmt, judge_all

PAPER = {  # PAPERS.md §7; the slides give no numbers (grids unverified)
    "misclustering": "reaches the minimax rate exp(−(1+o(1))Δ²/8σ²) with enough pretraining",
    "vs_lloyd": "compared with Lloyd's algorithm on ARI, NMI and cross-entropy",
    "beyond_assumptions": "strong results beyond the theory's assumptions",
    "model": "3 layers, 2 heads, width 64, Adam 5e-4 with decay 0.995, 300 iterations",
}


def summarise(cfg, curves) -> dict:
    """Scalars of record read off the curves: ARI and misclustering at each end of the grid."""
    seps = list(cfg.separations)
    out = {}
    for key, c in curves.items():
        if "_vs_separation_" in key:
            for s, v in zip(seps, c["y"]):
                out[f"{key}_at_{s:g}"] = v
    high = [s for s in seps if s >= 4]
    out["high_separation"] = high[0] if high else seps[-1]
    h = out["high_separation"]
    for m in ("transformer", "lloyd", "em"):
        mis = curves[f"misclustering_vs_separation_{m}"]["y"]
        out[f"{m}_below_minimax_from_3"] = float(all(
            v <= M.minimax_rate(s, 1.0) for s, v in zip(seps, mis) if s >= 3))  # fmt: skip
    out["ari_gap_transformer_minus_lloyd_high"] = (
        out[f"ari_vs_separation_transformer_at_{h:g}"] - out[f"ari_vs_separation_lloyd_at_{h:g}"]
    )
    out["construction_minus_em_max_ari"] = max(
        abs(a - b) for a, b in zip(curves["ari_vs_separation_em_construction"]["y"],
                                   curves["ari_vs_separation_em"]["y"]))  # fmt: skip
    return out


def _below(s, method) -> str:
    return "below" if s.get(f"{method}_below_minimax_from_3") == 1 else "above it at some Δ/σ"


FINDINGS = [
    Finding(
        "minimax_rate",
        "the trained transformer's misclustering falls at least as fast as the minimax rate "
        "exp(−Δ²/8σ²)",
        "misclustering at or below exp(−Δ²/8σ²) at every evaluated Δ/σ ≥ 3",
        lambda s: s["transformer_below_minimax_from_3"] == 1,
        lambda s: (
            f"transformer {_below(s, 'transformer')}, Lloyd {_below(s, 'lloyd')}, EM "
            f"{_below(s, 'em')} (Δ/σ ≥ 3; Lloyd and EM: 10 iterations from k-means++)"
        ),
        needs=("transformer_below_minimax_from_3",),
    ),
    Finding(
        "comparable_to_lloyd",
        "the trained transformer clusters about as well as Lloyd's algorithm on well-separated "
        "mixtures",
        "ARI at the first Δ/σ ≥ 4 at most 0.05 below Lloyd's (10 iterations, k-means++ start)",
        lambda s: s["ari_gap_transformer_minus_lloyd_high"] >= -0.05,
        lambda s: (
            f"transformer − Lloyd ARI = {fmt(s['ari_gap_transformer_minus_lloyd_high'])} "
            f"at Δ/σ = {fmt(s['high_separation'])}"
        ),
        needs=("ari_gap_transformer_minus_lloyd_high",),
    ),
    Finding(
        "beyond_assumptions",
        "the transformer does well beyond the theory's assumptions (anisotropic clusters, "
        "unequal weights)",
        "ARI on anisotropic (κ = 4) Dirichlet-weighted mixtures at most 0.05 below Lloyd's",
        lambda s: s["beyond_ari_transformer"] >= s["beyond_ari_lloyd"] - 0.05,
        lambda s: (
            f"transformer {fmt(s['beyond_ari_transformer'])}, Lloyd "
            f"{fmt(s['beyond_ari_lloyd'])}, EM {fmt(s['beyond_ari_em'])}"
        ),
        needs=("beyond_ari_transformer", "beyond_ari_lloyd"),
    ),
    Finding(
        "layers_follow_em",
        "successive layers carry out successive EM steps",
        "the best-matching EM iteration does not decrease from layer 1 to the last, and the "
        "last layer's best ARI with an EM iterate is ≥ 0.8",
        lambda s: s["layer_match_monotone"] == 1 and s["last_layer_best_similarity"] >= 0.8,
        lambda s: (
            "matched iterations by layer: "
            + ", ".join(str(s[f"matched_em_iteration_layer_{i}"]) for i in range(s["n_layers"] + 1))
            + f"; last layer's best ARI with EM {fmt(s['last_layer_best_similarity'])}"
        ),
        needs=("layer_match_monotone", "last_layer_best_similarity"),
    ),
    Finding(
        "construction_is_em",
        "the hand-built em_step transformer labels every point as EM does",
        "its ARI equals EM's at every separation (difference ≤ 1e-9)",
        lambda s: s["construction_minus_em_max_ari"] <= 1e-9,
        lambda s: f"largest ARI difference {fmt(s['construction_minus_em_max_ari'])}",
        of_paper=False,
        needs=("construction_minus_em_max_ari",),
    ),
]


def report(cfg, scalars: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the numbers."""
    h = scalars.get("high_separation", 4.0)
    rows = [Comparison(f"{m} ARI at Δ/σ = {fmt(h)}", f"ari_vs_separation_{m}_at_{h:g}",
                       PAPER["vs_lloyd"] if m == "transformer" else "", "")
            for m in ("transformer", "transformer_relu", "lloyd", "em")]  # fmt: skip
    rows += [
        Comparison("transformer misclustering at Δ/σ = 3", "misclustering_vs_separation_"
                   "transformer_at_3", PAPER["misclustering"], "exp(−9/8) = 0.325"),
        Comparison("beyond assumptions: transformer ARI", "beyond_ari_transformer",
                   PAPER["beyond_assumptions"], "κ = 4, Dirichlet weights"),
        Comparison("beyond assumptions: Lloyd ARI", "beyond_ari_lloyd", ""),
        Comparison("iris: transformer ARI", "iris_ari_transformer", "not in paper"),
        Comparison("iris: Lloyd ARI", "iris_ari_lloyd", ""),
        Comparison("digits: transformer ARI", "digits_ari_transformer", "not in paper"),
        Comparison("digits: Lloyd ARI", "digits_ari_lloyd", ""),
    ]  # fmt: skip
    scalars = {**scalars, "n_layers": cfg.n_layer}
    verdicts = judge_all(FINDINGS, scalars)
    t = cfg.train
    ctx = {"steps": t.steps, "batch_size": t.batch_size, "lr": t.lr, "decay": t.decay,
           "decay_every": t.decay_every, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
           "n_embd": cfg.n_embd, "n_points": cfg.n_points, "eval_prompts": cfg.eval_prompts,
           "iterations": cfg.iterations, "train_separation": f"{cfg.train_separation}"}  # fmt: skip
    notes = fill_beside(
        Path(__file__).with_name("he2025_clustering.md"), {**scalars, **ctx}, verdicts
    )
    return rows, list(verdicts.values()), notes
