"""The site's own figures, drawn from saved files alone: a run's training loss and evaluation
curves, and curves of several reproductions of one experiment overlaid. Okabe–Ito colours
(distinguishable with every common colour-vision deficiency) and a line style per series, so
print in grey still tells them apart; log y where a curve spans two decades or more."""

from __future__ import annotations

import json
from pathlib import Path

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"]
STYLES = ["-", "--", ":", "-."]


def _log_y(ys: list[list[float]]) -> bool:
    vals = [v for y in ys for v in y if isinstance(v, (int, float))]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= 100


def draw(series: list[dict], path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """One line per series {"label", "x", "y", optional "y_low"/"y_high"} (with its band)."""
    from icsim.analysis.plots import finish, plt, save

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for i, s in enumerate(series):
        color, style = OKABE_ITO[i % len(OKABE_ITO)], STYLES[i // len(OKABE_ITO) % len(STYLES)]
        ax.plot(
            s["x"],
            s["y"],
            style,
            color=color,
            label=s["label"],
            marker="." if len(s["x"]) < 30 else None,
        )
        if s.get("y_low") and s.get("y_high"):
            ax.fill_between(s["x"], s["y_low"], s["y_high"], color=color, alpha=0.15)
    if _log_y([s["y"] for s in series]):
        ax.set_yscale("log")
    ax.set(xlabel=xlabel or "x", ylabel=ylabel or "y", title=title)
    finish(ax)
    return save(fig, path)


def run_figures(run: Path, dest: Path, rel: str) -> list[str]:
    """A training run's loss against steps (metrics.jsonl) and its evaluation curves
    (eval/metrics.json, when `icsim eval` ran); site-relative paths."""
    out = []
    rows = []
    if (run / "metrics.jsonl").is_file():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if isinstance(row, dict) and "step" in row and "loss" in row:
                rows.append(row)
    if rows:
        s = {
            "label": "training loss",
            "x": [r["step"] for r in rows],
            "y": [r["loss"] for r in rows],
        }
        draw([s], dest / "loss.png", f"training loss of {run.name}", "step", "loss (task's own)")
        out.append(f"{rel}/loss.png")
    ev = run / "eval" / "metrics.json"
    if ev.is_file():
        curves = json.loads(ev.read_text()).get("curves", {})
        if curves:
            first = next(iter(curves.values()))
            series = [{"label": k, **c} for k, c in curves.items()]
            draw(series, dest / "eval.png", f"evaluation of {run.name}",
                 first.get("x_label", ""), first.get("y_label", ""))  # fmt: skip
            out.append(f"{rel}/eval.png")
    return out


def _label(e) -> str:
    m = e.metrics
    return f"{e.path.name} ({m.get('profile', '?')}, {str(m.get('git_commit', ''))[:8]})"


def overlay(group: list, dest: Path, rel: str) -> list[dict]:
    """For each curve name any reproduction of `group` has: one figure with every reproduction's
    curve. Returns [{"name", "src"}]."""
    names = sorted({k for e in group for k in e.metrics.get("curves", {})})
    out = []
    for name in names:
        series, first = [], None
        for e in group:
            c = e.metrics.get("curves", {}).get(name)
            if c and c.get("x") and c.get("y"):
                first = first or c
                series.append({**c, "label": _label(e)})
        if not series:
            continue
        file = f"{name}.png".replace("/", "_")
        draw(series, dest / file, name, first.get("x_label", ""), first.get("y_label", ""))
        out.append({"name": name, "src": f"{rel}/{file}"})
    return out


def scalar_rows(group: list) -> list[dict]:
    """Every scalar of any reproduction in `group`: {"name", "values": [one per entry], "paper"}."""
    names = sorted({k for e in group for k in e.metrics.get("scalars", {})})
    paper = {k: v for e in group for k, v in e.metrics.get("paper", {}).items()}
    return [
        {
            "name": k,
            "values": [e.metrics.get("scalars", {}).get(k, "") for e in group],
            "paper": paper.get(k, ""),
        }
        for k in names
    ]
