"""Figures and printed reports of the constructions: the float32 error growth of a
construction, the logistic construction's error against damped Newton across widths, the
deep_gd construction's error against heads, and the lines `icsim construct` prints for a
verification (`icsim.constructions.verify.Verification.summary`) and for `verify_deep_gd`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    from icsim.analysis.plots import plt  # matplotlib with the Agg backend

    return plt


def save(fig, path):
    from icsim.analysis.plots import save

    return save(fig, path)


def finish(ax, fontsize: int = 8):
    from icsim.analysis.plots import finish

    finish(ax, fontsize)


def format_construction(info, n_parameters: int) -> list[str]:
    """The lines describing a construction's size and what it implements."""
    hp = ", ".join(f"{k}={v}" for k, v in info.hyperparameters.items())
    f = info.formulas
    return [
        f"construction {info.name} (dim={info.dim}, steps={info.steps})",
        f"  implements: {info.citation}",
        f"  reference:  {info.algorithm}({hp})",
        f"  model: {info.layers} layers ({f.get('layers', '?')}), {info.heads} heads, width "
        f"{info.width} ({f.get('width', '?')}), head dim {info.head_dim}, "
        f"{n_parameters} parameters",
        f"  step t is read from hidden[{info.block_offset} + {info.layers_per_step}·t]",
    ]


def format_verification(v) -> str:
    """The printed report of a `Verification`: the model, the largest relative error after every
    step (per κ), the criterion with its verdict; the last line is the largest deviation."""
    lines = format_construction(v.info, v.n_parameters)
    kappas = list(v.per_step_by_condition)
    task = "".join(f", {k}={val}" for k, val in v.task_params.items())
    lines.append(f"  {v.n_problems} problems ({v.dtype}), κ ∈ {{{', '.join(kappas)}}}{task}")
    lines.append("  step  block  max rel. error  " + "  ".join(f"{'κ=' + k:>9}" for k in kappas))
    for t, (block, err) in enumerate(zip(v.info.step_blocks, v.per_step)):
        by_k = "  ".join(f"{v.per_step_by_condition[k][t]:9.2e}" for k in kappas)
        lines.append(f"  {t:4d}  {block:5d}  {err:14.2e}  {by_k}")
    lines.append(f"  criterion: {v.criterion}: {'PASS' if v.passed else 'FAIL'}")
    lines.append(f"largest relative deviation: {v.max_error:.3e}")
    return "\n".join(lines)


def plot_error_growth(curves: dict, path: str | Path, *, title: str = "") -> Path:
    """PNG of `error_growth` curves: median with 10–90% band, max dashed, log scale."""
    plt = _plt()

    def positive(values):  # log axes cannot show an exact 0
        return [v if v > 0 else float("nan") for v in values]

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, c in curves.items():
        (line,) = ax.plot(c["x"], positive(c["y"]), marker=".", label=f"{label} (median)")
        ax.fill_between(
            c["x"], positive(c["y_low"]), positive(c["y_high"]), alpha=0.2, color=line.get_color()
        )
        if "y_max" in c:
            ax.plot(c["x"], positive(c["y_max"]), linestyle="--", color=line.get_color(), lw=1)
    first = next(iter(curves.values()))
    ax.set_xlabel(first["x_label"])
    ax.set_ylabel(first["y_label"])
    ax.set_yscale("log")
    ax.set_title(title or "construction vs algorithm (dashed: max)")
    finish(ax)
    return save(fig, path)


def plot_error_table(table: dict, path: str | Path) -> Path:
    """Two panels, log scale: ‖ŵ_t − w_t‖ per step, and ‖ŵ_t − w*‖ beside damped Newton's."""
    plt = _plt()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    t = table["steps"]
    widths = sorted({row["width"] for row in table["rows"]})
    ks = sorted({row["newton_schulz_steps"] for row in table["rows"]})
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    styles = ["-", "--", ":", "-."]
    for row in table["rows"]:
        style = {
            "color": colours[widths.index(row["width"])],
            "linestyle": styles[ks.index(row["newton_schulz_steps"]) % len(styles)],
            "marker": ".",
            "label": f"W={row['width']}, k={row['newton_schulz_steps']}",
        }
        left.semilogy(t[1:], row["error"][1:], **style)
        right.semilogy(t, row["error_to_optimum"], **style)
    right.semilogy(
        t, table["damped_newton_to_optimum"], color="red", lw=2, label="damped Newton (exact)"
    )
    left.set(xlabel="Newton step t", ylabel="mean ‖ŵ_t − w_t‖ (vs exact damped Newton)")
    right.set(xlabel="Newton step t", ylabel="mean ‖w_t − w*_μ‖")
    left.set_title("construction vs damped Newton, per step")
    right.set_title("distance to the optimum")
    for ax in (left, right):
        finish(ax, 7)
    return save(fig, path)


def plot_deep_gd(result: dict, path: str | Path) -> Path:
    """Two panels: max error against heads, and distance to GD against the step l."""
    plt = _plt()

    floor = 1e-17  # exact zeros on a log axis
    sw = result["heads_sweep"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.loglog(
        sw["heads"],
        [max(v, floor) for v in sw["max_distance_to_gd"]],
        "o-",
        label="max_l ‖w̄ − w̄_GD‖",
    )
    a.loglog(
        sw["heads"],
        [max(v, floor) for v in sw["max_one_step_error"]],
        "s--",
        label="max_l ‖ε^(l)‖ (one step)",
    )
    if result["epsilon_target"] is not None:
        target = result["params"]["step_size"] * result["epsilon_target"]
        a.axhline(target, color="k", lw=0.8, ls=":", label="η·ε target")
    a.set(xlabel="heads per unit in the r′ layer (knots)", ylabel="error", title="error vs heads")
    a.legend(fontsize=8)
    cmap = plt.get_cmap("viridis")
    for i, (M, dist) in enumerate(sw["distance_by_step"].items()):
        b.semilogy(
            result["steps"],
            [max(v, floor) for v in dist],
            marker=".",
            color=cmap(i / max(len(sw["distance_by_step"]) - 1, 1)),
            label=f"{M} heads",
        )
    b.set(xlabel="GD step l (block)", ylabel="‖w̄^(l) − w̄^(l)_GD‖₂", title="error against L")
    b.legend(fontsize=7, ncol=2)
    return save(fig, path)


def format_deep_gd(result: dict) -> str:
    """Lines for `icsim construct deep_gd --verify`; the last one is the largest deviation."""
    p = result["params"]
    lines = [
        f"deep_gd (Wu et al. 2025, Thm 1): N={p['depth']}-layer ReLU network, d={p['dim']}, "
        f"width {p['width']}, L={p['steps']} steps, η={p['step_size']}, radius={p['radius']}",
        f"layers: {result['layers']} = (2N+4)·L + N read-out; r′ layer: {result['heads']} knots "
        f"({result['derivative_heads']} heads), ramp width {result['ramp_width']:.3g}",
        "step  ‖w̄−w̄_GD‖₂    one-step ‖ε‖   bound ηε     vs own-r̂′ GD",
    ]
    for l in result["steps"]:
        lines.append(
            f"{l:>4}  {result['distance_to_gd'][l]:.3e}   {result['one_step_error'][l]:.3e}    "
            f"{result['bound'][l]:.3e}   {result['surrogate_deviation'][l]:.3e}"
        )
    sw = result["heads_sweep"]
    lines.append(
        "heads sweep (max distance to GD): "
        + ", ".join(f"{h}: {e:.1e}" for h, e in zip(sw["heads"], sw["max_distance_to_gd"]))
    )
    target = result["epsilon_target"]
    lines.append(
        f"exact parts (model = GD with its own r̂′): {'ok' if result['exact_parts_ok'] else 'FAIL'}"
        f"; one-step errors within ηε: {'yes' if result['within_bound'] else 'NO'}"
        + (
            ""
            if target is None
            else f"; within η·{target:g}: {'yes' if result['meets_target'] else 'NO'}"
        )
        + f" -> {'PASS' if result['passed'] else 'FAIL'}"
    )
    if result.get("figure"):
        lines.append(f"figure: {result['figure']}")
    worst = max(result["distance_to_gd"])
    lines.append(f"largest deviation from GD: max_l ‖w̄^(l) − w̄^(l)_GD‖₂ = {worst:.3e}")
    return "\n".join(lines)


def deep_gd_measures(result: dict, prefix: str = "construction_") -> tuple[dict, dict]:
    """`verify_deep_gd`'s result as (curves, scalars) of metrics.json: per-step distance to GD,
    one-step error against the bound η·ε, and the distance to exact GD against the heads."""
    from icsim.analysis.report import Curve

    scalars = {f"{prefix}{k}": v for k, v in result["scalars"].items()}
    scalars[f"{prefix}layers_per_step"] = result["layers_per_step"]
    sw, errs = result["heads_sweep"], result["heads_sweep"]["max_distance_to_gd"]
    scalars[f"{prefix}error_fewest_heads"] = errs[0]
    scalars[f"{prefix}error_most_heads"] = errs[-1]
    # the share of the sweep's steps that do not increase the distance to exact GD
    scalars[f"{prefix}error_non_increasing_fraction"] = sum(
        b <= a for a, b in zip(errs, errs[1:])
    ) / max(len(errs) - 1, 1)
    steps, step = result["steps"], "GD step l"
    curves = {
        "error_vs_heads": Curve(sw["heads"], errs, "heads per unit (r′ knots)",
                                "max_l ‖w̄ − w̄_GD‖₂"),
        "error_vs_step": Curve(steps, result["distance_to_gd"], step, "‖w̄^(l) − w̄^(l)_GD‖₂"),
        "one_step_error": Curve(steps, result["one_step_error"], step, "‖ε^(l)‖₂"),
        "bound": Curve(steps, result["bound"], step, "η·ε"),
    }  # fmt: skip
    return {f"{prefix}{k}": c.to_json() for k, c in curves.items()}, scalars


def newton_width_measures(table: dict, main_width: int) -> tuple[dict, dict]:
    """`logistic_newton.error_table`'s result as (curves, scalars) of metrics.json: the error
    against exact damped Newton per step at every width, the floor it reaches, and how the floor
    falls with the width (the max error over steps ≤ 3 is read at `main_width`, or the widest)."""
    from icsim.analysis.report import Curve

    t, step = table["steps"], "Newton step t"
    curves = {
        "damped_newton_to_optimum": Curve(
            t, table["damped_newton_to_optimum"], step, "mean ‖w_t − w*_μ‖"
        )
    }
    scalars, widths, floors = (
        {},
        [r["width"] for r in table["rows"]],
        [r["floor"] for r in table["rows"]],
    )
    for row in table["rows"]:
        W = row["width"]
        curves[f"construction_W{W}_error_vs_damped_newton"] = Curve(
            t, row["error"], step, "mean ‖ŵ_t − w_t‖ (exact damped Newton w_t)"
        )
        curves[f"construction_W{W}_to_optimum"] = Curve(
            t, row["error_to_optimum"], step, "mean ‖ŵ_t − w*_μ‖"
        )
        scalars[f"construction_max_error_T3_W{W}"] = max(row["max_error"][:4])
        scalars[f"construction_floor_W{W}"] = row["floor"]
    main = main_width if main_width in widths else max(widths)
    scalars["construction_max_error_T3"] = scalars[f"construction_max_error_T3_W{main}"]
    scalars["construction_max_error_T3_width"] = main
    scalars["construction_newton_schulz_steps"] = table["rows"][0]["newton_schulz_steps"]
    curves["construction_floor_vs_width"] = Curve(
        widths, floors, "MLP grid intervals W", f"mean ‖ŵ_{t[-1]} − w*_μ‖ (floor)"
    )
    if len(widths) > 1:
        # floor ∝ W^(−p): the factor per doubling is 2^p (fit through the widths)
        slope = np.polyfit(np.log2(widths), np.log2(floors), 1)[0]
        scalars["construction_floor_factor_per_doubling"] = float(2 ** (-slope))
        scalars["construction_floor_decreases_with_width"] = float(
            all(b < a for a, b in zip(floors, floors[1:]))
        )
    return {k: v.to_json() for k, v in curves.items()}, scalars


def newton_depth_figure(curves: dict, tag: str, ks, kappa: float, xmax: int, path) -> Path:
    """Three log-scale panels of giannou2025's curves at one condition number (`tag`): the
    paper's loss against layers/steps, the same for the distance to w_N (transformers per depth,
    damped Newton and GD per step, up to `xmax`), and trained transformers against the
    construction (one line per Newton–Schulz k in `ks`) in layers."""
    from icsim.analysis.plots import plot_panels

    cv = {k[: -len(tag) - 1]: v for k, v in curves.items() if k.endswith("_" + tag)}
    styles = {"transformer": dict(marker="o", lw=2), "damped_newton": dict(ls="--", marker=".")}
    styles["gd"] = dict(ls=":")

    def upto(c):  # the points at x <= xmax (GD runs far longer than the deepest model)
        n = sum(1 for x in c["x"] if x <= xmax)
        return {k: v[:n] if isinstance(v, list) else v for k, v in c.items()}

    panels = []
    for what, title in (
        ("excess_loss", f"regularised logistic loss, κ = {kappa:g}"),
        ("w_error", "distance to the Newton solution w_N"),
    ):
        # converged Newton sits at round-off (1e-30): show 3 decades below the transformer
        low = min((y for y in cv[f"transformer_{what}"]["y_low"] if y > 0), default=1)
        lines = [(name, upto(cv[f"{name}_{what}"]), style) for name, style in styles.items()]
        xlabel, ylabel = "layers (transformer) / steps (Newton, GD)", lines[0][1]["y_label"]
        panels.append(dict(lines=lines, title=title, yscale="log", ymin=1e-3 * low,
                           xlabel=xlabel, ylabel=ylabel))  # fmt: skip
    c = cv["transformer_w_error"]
    lines = [("trained transformer", {"x": c["x"], "y": c["y"]}, dict(marker="o", lw=2))]
    for k in ks:
        v = cv[f"construction_k{k}_w_error"]
        x = [max(layer, 0.5) for layer in v["x"]]  # layer 0 (w₀ = 0) drawn at 0.5
        label = f"construction, k = {k} ({v['x'][1]} layers per step)"
        lines.append((label, {"x": x, "y": v["y"]}, dict(marker=".", ls="--")))
    title, xlabel = "trained vs constructed, per layer", "layers (0 drawn at 0.5)"
    panels.append(dict(lines=lines, title=title, xscale="log", yscale="log", xlabel=xlabel,
                       ylabel=c["y_label"]))  # fmt: skip
    return plot_panels(panels, path)
