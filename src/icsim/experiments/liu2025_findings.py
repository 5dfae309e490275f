"""What liu2025's report says, as a pure function of the config and the measured numbers: the
paper's claims (PAPERS.md §9 states findings, no numbers), the evaluation settings they are
judged on, the findings (each with the criterion on our scalars that decides it), the rows of
"our numbers beside the paper's", the generalisation table, and `report`, which fills
`liu2025.md` with them. `liu2025.py` measures."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from icsim.analysis.report import Comparison, Finding, fill_beside, judge_all, markdown_table

# PAPERS.md §9 states the findings but no numbers: every "paper" entry is a claim, in words.
PAPER = {
    "transformer_beats_ista_fista": "yes (trained transformers beat ISTA and FISTA)",
    "transformer_vs_lista_on_its_matrix": "competitive with LISTA-type methods trained for that X",
    "transformer_beats_lista_on_new_matrix": "yes (generalises to unseen measurement matrices)",
    "transformer_generalises_to_other_n": "yes (LISTA-type methods do not)",
    "shared_support_helps": "yes (improves when the support structure is shared)",
    "convergence_in_layers": "linear, rate improving with K (theory, LISTA-VM construction)",
    "numbers": "not reported in PAPERS.md",
}


def settings(cfg) -> dict:
    """Evaluation settings: name -> (task parameters beyond d, s, σ; N; what it tests). X_A is
    LISTA's training matrix."""
    N, rho = cfg.n_demos, cfg.correlated_rho

    def on_a(n, **kw):
        return {"ensemble": "fixed", "matrix_seed": cfg.train_matrix_seed, "fixed_rows": n, **kw}

    out = {
        "train_matrix": (on_a(N), N, "LISTA's training matrix X_A"),
        "new_matrix": (
            {"ensemble": "fixed", "matrix_seed": cfg.new_matrix_seed, "fixed_rows": N},
            N,
            "one unseen matrix X_B, same ensemble",
        ),
        "fresh_matrices": ({}, N, "a new Gaussian matrix in every prompt"),
        "correlated": (
            {"ensemble": "correlated", "rho": rho},
            N,
            f"other ensemble: correlated rows (ρ = {rho}), new every prompt",
        ),
        "fewer_demos": (on_a(cfg.fewer_demos), cfg.fewer_demos, f"X_A, N = {cfg.fewer_demos}"),
        "more_demos": (on_a(cfg.more_demos), cfg.more_demos, f"X_A, N = {cfg.more_demos}"),
        "higher_sparsity": (
            on_a(N, sparsity=cfg.shifted_sparsity),
            N,
            f"X_A, s = {cfg.shifted_sparsity}",
        ),
        "noisy": (on_a(N, noise_std=cfg.shifted_noise), N, f"X_A, σ = {cfg.shifted_noise}"),
    }
    if cfg.shared_support_steps != 0:
        out["shared_supports"] = (
            {"supports": "shared", "n_supports": cfg.n_supports},
            N,
            f"supports from a fixed set of {cfg.n_supports}, new matrix every prompt",
        )
    return out


CLAIMS = {  # the paper's claim for each evaluation setting (PAPERS.md §9), in words
    "train_matrix": "transformer beats ISTA/FISTA; competitive with LISTA-type on their own X",
    "new_matrix": "transformer generalises to unseen X; LISTA-type methods do not",
    "fresh_matrices": "transformer generalises to unseen X; LISTA-type methods do not",
    "correlated": "not stated in PAPERS.md (it claims unseen matrices, ensemble not given)",
    "fewer_demos": "transformer generalises across N; LISTA-type methods struggle or fail",
    "more_demos": "transformer generalises across N; LISTA-type methods struggle or fail",
    "higher_sparsity": "not stated in PAPERS.md",
    "noisy": "not stated in PAPERS.md",
    "shared_supports": "training on shared supports improves the transformer",
}
COMPETITIVE_DB = 3.0  # "competitive with LISTA": within 3 dB of it on its own matrix
OFF_X_A = ("new_matrix", "fresh_matrices", "correlated", "fewer_demos", "more_demos")


def _gaps(s) -> dict:
    """The best LISTA-type method off X_A; transformer − LISTA on X_A, − that best elsewhere, and
    the shared-support model's gain (dB): < 0 means the transformer wins."""
    gaps = {f"{k}.best_lista_db": min(s[f"{k}.lista_db"], s[f"{k}.lista_cp_db"]) for k in OFF_X_A}
    gaps["gap_train_matrix"] = s["train_matrix.transformer_db"] - s["train_matrix.lista_db"]
    for k in OFF_X_A:
        gaps[f"gap_{k}"] = s[f"{k}.transformer_db"] - gaps[f"{k}.best_lista_db"]
    if "shared_supports.transformer_shared_db" in s:
        gain = s["shared_supports.transformer_db"] - s["shared_supports.transformer_shared_db"]
        gaps["shared_gain"] = gain
    return gaps


def findings(cfg) -> list[Finding]:
    """The paper's claims (PAPERS.md §9) and the criteria deciding whether this run shows them."""

    def below(*args, margin=0.0):  # ours < than + margin (dB)
        return Finding.below(*args, margin=margin, unit="dB")

    tf = "train_matrix.transformer_db"
    out = [
        below(
            f"beats_{a}",
            f"the transformer beats {a.upper()} layer for step on X_A",
            f"transformer after L layers below {a.upper()} after K steps",
            tf,
            f"train_matrix.{a}_db",
        )
        for a in ("ista", "fista")
    ]
    out.append(
        below(
            "competitive_with_lista",
            "the transformer is competitive with LISTA on LISTA's own matrix X_A",
            f"transformer within {COMPETITIVE_DB:g} dB of LISTA (or below it)",
            tf,
            "train_matrix.lista_db",
            margin=COMPETITIVE_DB + 1e-12,
        )
    )
    for k, label in (
        ("new_matrix", "one unseen matrix X_B"),
        ("fresh_matrices", "a new matrix every prompt"),
        ("fewer_demos", f"X_A with fewer demonstrations (N = {cfg.fewer_demos})"),
        ("more_demos", f"X_A with more demonstrations (N = {cfg.more_demos})"),
    ):
        out.append(
            below(
                f"generalises_{k}",
                f"the transformer beats LISTA and LISTA-CP on {label}",
                "transformer below both LISTA-type methods",
                f"{k}.transformer_db",
                f"{k}.best_lista_db",
            )
        )
    slope, r2 = "transformer_db_slope_per_layer", "transformer_db_r2_linear_in_layer"
    out.append(
        Finding(
            "linear_in_layers",
            "the transformer's error falls linearly (in dB) with depth",
            "slope of dB against layer < 0 and R² of the line ≥ 0.9",
            lambda s: s[slope] < 0 and s[r2] >= 0.9,
            lambda s: f"{s[slope]:.2f} dB/layer, R² = {s[r2]:.2f}",
        )
    )
    if cfg.shared_support_steps != 0:
        out.append(
            below(
                "shared_support_helps",
                "training on shared supports lowers the error on shared-support prompts",
                "the shared-support model's NMSE below the uniform model's",
                "shared_supports.transformer_shared_db",
                "shared_supports.transformer_db",
            )
        )
    return out


def comparisons(cfg, K: int, L: int) -> list[Comparison]:
    beats, numbers = PAPER["transformer_beats_ista_fista"], PAPER["numbers"]
    rows = [
        Comparison(
            f"transformer NMSE (dB) on X_A, N = {cfg.n_demos}, {L} layers",
            "train_matrix.transformer_db",
            numbers,
            "NMSE of x_qᵀβ̂ against the noiseless x_qᵀβ*",
        ),
        Comparison(
            f"ISTA NMSE (dB) on X_A after {K} steps",
            "train_matrix.ista_db",
            beats,
            "layer for step",
        ),
        Comparison(
            f"FISTA NMSE (dB) on X_A after {K} steps",
            "train_matrix.fista_db",
            beats,
            "layer for step",
        ),
        Comparison(
            "ISTA / FISTA steps to reach the transformer's error",
            "steps_to_match",
            numbers,
            f"λ = {cfg.lam}, step 1/L",
        ),
        Comparison(
            "transformer − LISTA on LISTA's own X_A (dB)",
            "gap_train_matrix",
            PAPER["transformer_vs_lista_on_its_matrix"],
            f"K = {K}",
        ),
    ]
    for k, (_, n, what) in settings(cfg).items():
        if k in OFF_X_A:
            paper = CLAIMS[k] if k != "correlated" else "not reported separately (unseen matrices)"
            quantity = f"transformer − best of LISTA, LISTA-CP (dB): {what}, N = {n}"
            rows.append(Comparison(quantity, f"gap_{k}", paper))
    if cfg.shared_support_steps != 0:
        steps = f"{cfg.shared_support_steps or cfg.transformer.steps} vs {cfg.transformer.steps}"
        rows.append(
            Comparison(
                "shared-support training: dB gain on shared-support prompts",
                "shared_gain",
                PAPER["shared_support_helps"],
                f"{cfg.n_supports} supports; {steps} steps",
            )
        )
    rows.append(
        Comparison(
            "transformer's dB error against depth: slope per layer (dB)",
            "transformer_db_slope_per_layer",
            PAPER["convergence_in_layers"],
            "R²: see Findings",
        )
    )
    return rows


def _table(cfg, s: dict, K: int, L: int) -> str:
    """The generalisation table (NMSE in dB, every setting × method) in markdown."""
    heads = {"transformer": f"transformer ({L} layers)"}
    if cfg.shared_support_steps != 0:
        heads["transformer_shared"] = "transformer, shared-support trained"
    heads |= {
        "ista": f"ISTA ({K} steps)",
        "fista": f"FISTA ({K} steps)",
        "lista": f"LISTA ({K} layers)",
    }
    heads |= {"lista_cp": f"LISTA-CP ({K} layers)", "lasso": "LASSO (converged)"}
    rows = [
        [f"{name}: {what} (N = {n})", *(f"{s[f'{name}.{m}_db']:.1f}" for m in heads), CLAIMS[name]]
        for name, (_, n, what) in settings(cfg).items()
    ]
    return markdown_table(["setting", *heads.values(), "paper's claim"], rows)


SHARED_LINE = (
    "- A second transformer, same architecture and settings, was trained for {steps} steps on "
    "supports drawn from a fixed set of {n} (the paper's shared structure); it is evaluated on "
    "such prompts (`shared_supports`) and, as a check of what it gave up, on the others."
)


def report(cfg, scalars: dict) -> tuple[list, str]:
    """(comparison rows, notes) of the report, from the measured numbers alone."""
    t = cfg.transformer
    L, K = t.n_layer, cfg.lista_layers or t.n_layer
    s = {**scalars, **_gaps(scalars)}
    verdicts = judge_all(findings(cfg), s)
    more = [
        f"> {cfg.algorithm_steps}" if n > cfg.algorithm_steps else str(n)
        for n in (s["ista_steps_to_match_transformer"], s["fista_steps_to_match_transformer"])
    ]
    shared = SHARED_LINE.format(steps=cfg.shared_support_steps or t.steps, n=cfg.n_supports)
    text = {**asdict(cfg), **asdict(t), "L": L, "K": K, "steps_to_match": " / ".join(more)}
    text |= {
        "table": _table(cfg, s, K, L),
        "shared_line": shared if cfg.shared_support_steps else "",
    }
    text |= {k: f"{s[f'train_matrix.{k}_db']:.1f}" for k in ("transformer", "lista", "lasso")}
    values = {**s, **text}
    return [c.row(values) for c in comparisons(cfg, K, L)], fill_beside(
        Path(__file__).with_name("liu2025.md"), values, verdicts
    )
