"""Figures drawn from metrics.json curves alone (PNG, matplotlib's Agg backend).

Every figure is saved with a JSON sidecar (`NAME.figure.json`) of what was drawn: each panel's
axis scales, limits and labels, and each line's label, style and data, so tests (and readers)
can check a figure without looking at it. Curves whose positive values span decades get a log
axis (symmetric-log where some values are 0, so no curve vanishes); each curve gets its own
colour and line style, and the paper's numbers are drawn as black stars where given.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

SIDECAR = ".figure.json"
STYLES = ("-", "--", "-.", ":")  # with the colour cycle: no two of the first 20 curves alike
DECADES_FOR_LOG = 2  # positive values spanning at least 10² get a log axis
LABELS = {
    "nearest_neighbours": "3-nearest neighbours",
    "least_squares": "least squares",
    "iterative_newton": "iterative Newton",
}


def label(name: str) -> str:
    """A curve's name as a legend label ("least_squares" -> "least squares", "kappa100" ->
    "κ = 100")."""
    if name in LABELS:
        return LABELS[name]
    text = re.sub(r"kappa(\d+)", r"κ = \1", name.replace("_", " "))
    return text.replace("iterative newton", "iterative Newton")


def save(fig, path: str | Path) -> Path:
    """Lay out, write (PNG, 120 dpi; the folder is made if missing), describe in the sidecar
    JSON and close a figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _wrap_titles(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    sidecar(path).write_text(json.dumps(describe(fig), indent=1, default=_num))
    plt.close(fig)
    return path


def _wrap_titles(fig) -> None:
    """Break a panel title that would run past its panel's width (it was cut off otherwise)."""
    for ax in fig.axes:
        title = ax.get_title()
        if not title or "\n" in title:
            continue
        inches = ax.get_position().width * fig.get_figwidth()
        chars = int(inches * 72 / (0.6 * ax.title.get_fontsize()))  # ~0.6 em per character
        if len(title) > chars:
            ax.set_title("\n".join(textwrap.wrap(title, max(chars, 20))))


def sidecar(png: str | Path) -> Path:
    """Where the description of the figure `png` is written."""
    png = Path(png)
    return png.with_name(png.stem + SIDECAR)


def _num(v):
    return float(v) if hasattr(v, "__float__") else str(v)


def describe(fig) -> dict:
    """What a figure shows: per panel its scales, limits, labels, legend and lines."""
    panels = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        lo, hi = ax.get_ylim()
        lines = []
        for ln in ax.get_lines():
            x = [float(v) for v in ln.get_xdata()]
            y = [float(v) for v in ln.get_ydata()]
            inside = [
                v for v in y
                if math.isfinite(v) and min(lo, hi) <= v <= max(lo, hi)
                and (ax.get_yscale() != "log" or v > 0)
            ]  # fmt: skip
            lines.append({
                "label": ln.get_label(), "color": matplotlib.colors.to_hex(ln.get_color()),
                "linestyle": ln.get_linestyle(), "marker": str(ln.get_marker()),
                "x": x, "y": y, "visible": bool(inside),
            })  # fmt: skip
        legend = ax.get_legend()
        panels.append({
            "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "xscale": ax.get_xscale(), "yscale": ax.get_yscale(), "ylim": [lo, hi],
            "xticks": [float(t) for t in ax.get_xticks()],
            "yticks": [float(t) for t in ax.get_yticks()],
            "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
            "lines": lines, "images": len(ax.images),
        })  # fmt: skip
    return {"panels": panels}


def _integer_x(ax, xs) -> None:
    """Whole-number ticks on an x axis of whole numbers (layers, steps, k): no "layer 0.5"."""
    values = [v for x in xs for v in x if v is not None]
    if values and all(float(v).is_integer() for v in values) and ax.get_xscale() == "linear":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _overlap(a: dict, b: dict, span: float) -> str:
    """ "=" where curve a equals b (to 1e-9), "≈" where it lies on b as drawn (every point within
    0.5% of the panel's y span), "" otherwise."""
    if list(a["x"]) != list(b["x"]) or any(v is None for v in [*a["y"], *b["y"]]):
        return ""
    pairs = list(zip(a["y"], b["y"], strict=True))
    if all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12) for u, v in pairs):
        return "="
    return "≈" if max(abs(u - v) for u, v in pairs) <= 5e-3 * span else ""


def finish(ax, fontsize: int = 8) -> None:
    """The legend (outside the panel when there are many entries) and a light grid."""
    n = len(ax.get_legend_handles_labels()[1])
    if n > 5:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif n:
        ax.legend(fontsize=fontsize)
    ax.grid(alpha=0.3, which="both" if ax.get_yscale() != "linear" else "major")


def y_scale(curves, logy: bool | None) -> tuple[str, dict]:
    """The y axis for these curves: ("log" | "symlog" | "linear", its keyword arguments).

    `logy=None` decides from the data: log when every value is ≥ 0 and the positive ones span
    ≥ 10² (errors against k, losses); symlog instead of log where some values are 0 (exact
    least squares, a matched step of 0), so those points stay on the figure."""
    ys = [v for c in curves for v in c["y"] if v is not None and math.isfinite(v)]
    pos = [v for v in ys if v > 0]
    sizes = sorted(abs(v) for v in ys if v != 0)
    if logy is None and ys and min(ys) < 0 and sizes:
        # signed values where a few are ≥ 10 × the typical size (an R² of −47 or −3700 beside
        # ones near 1): symlog, linear within the typical size, so the rest are not flattened
        typical = sizes[(len(sizes) - 1) // 2]
        if sizes[-1] >= 10 * typical:
            return "symlog", {"linthresh": typical}
        return "linear", {}
    if logy is None:
        logy = bool(pos) and min(ys) >= 0 and max(pos) / min(pos) >= 10**DECADES_FOR_LOG
    if not logy:
        return "linear", {}
    if not pos:  # nothing positive to put on a log axis (e.g. every matched step 0)
        return "linear", {}
    if len(pos) < len(ys):
        return "symlog", {"linthresh": min(pos)}
    return "log", {}


def plot_curves(
    curves: dict,
    path: str | Path,
    *,
    title: str = "",
    logy: bool | None = None,
    vline: float | None = None,
    vline_label: str = "",
    hlines: dict | None = None,
    paper: dict | None = None,
) -> Path:
    """One line per curve (a `Curve` or its metrics.json dict) with its interval band where the
    curve has one; `hlines` maps a label to a reference level drawn dashed; `paper` maps a label
    to the paper's numbers (xs, ys), drawn as black stars. `logy`: True, False, or None to
    decide from the data (`y_scale`). A curve that lies on an earlier one says so in its label
    ("(= EM)"), so a hidden curve is never a missing one."""
    curves = {k: c.to_json() if hasattr(c, "to_json") else c for k, c in curves.items()}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = [*curves.values(), *({"y": list(ys)} for _, ys in (paper or {}).values())]
    scale, kw = y_scale(shown, logy)
    ys = [v for c in curves.values() for v in c["y"] if v is not None and math.isfinite(v)]
    # "lies on it as drawn" is judged on a linear axis only (on a log axis 0 and 1e-3 are apart)
    span = (max(ys) - min(ys)) if ys and scale == "linear" else 0.0
    for i, (name, c) in enumerate(curves.items()):
        colour, style = colours[i % len(colours)], STYLES[i % len(STYLES)]
        under = [(s, label(m)) for m, b in list(curves.items())[:i] if (s := _overlap(c, b, span))]
        text = label(name) + (f" ({under[0][0]} {under[0][1]})" if under else "")
        (line,) = ax.plot(
            c["x"], c["y"], label=text, color=colour, linestyle=style,
            lw=2.2 if i == 0 else 1.5, zorder=3 if i == 0 else 2,
            marker="." if len(c["x"]) < 30 else None,
        )  # fmt: skip
        if c.get("y_low") is not None and c.get("y_high") is not None:
            ax.fill_between(c["x"], c["y_low"], c["y_high"], alpha=0.15, color=colour)
    for text, (xs, ys) in (paper or {}).items():
        ax.plot(xs, ys, linestyle="none", marker="*", ms=11, color="black", label=text, zorder=4)
    first = next(iter(curves.values()))
    ax.set_xlabel(first.get("x_label", ""))
    ax.set_ylabel(first.get("y_label", ""))
    ax.set_yscale(scale, **kw)
    _integer_x(ax, [c["x"] for c in curves.values()])
    if vline is not None:
        ax.axvline(vline, color="grey", linestyle=":", label=vline_label or None)
    for text, level in (hlines or {}).items():
        ax.axhline(level, linestyle="--", lw=1, color="black", alpha=0.6, label=text)
    ax.set_title(title)
    finish(ax)
    return save(fig, path)


def plot_training_losses(out: str | Path) -> list[Path]:
    """A training-loss figure per trained model under `out` (each metrics.jsonl, or a log of
    such rows), `training_loss_<where>.png` in `out`."""
    from icsim.analysis.report import Curve

    out, figures = Path(out), []
    for log in sorted(out.rglob("*.jsonl")):
        rows = []
        for line in log.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line torn by a kill
                continue
        curve = Curve.of_training([r for r in rows if isinstance(r, dict)], "training loss")
        if len(curve.x) < 2:
            continue
        where = log.parent if log.name == "metrics.jsonl" else log.with_suffix("")
        name = "_".join(where.relative_to(out).parts) or "run"
        figures.append(
            plot_curves(
                {name: curve}, out / f"training_loss_{name}.png", title=f"training loss: {name}"
            )  # fmt: skip
        )
    return figures


def plot_heatmap(
    matrix, path: str | Path, *, xlabel: str, ylabel: str, title: str = "", xticks=None, yticks=None
) -> Path:
    """A matrix as an image (rows = y, origin at the bottom). Ticks are the row/column indices
    unless `xticks`/`yticks` name them; crowded tick labels are turned, long titles wrapped."""
    fig, ax = plt.subplots(figsize=(6, 4))
    im = ax.imshow(matrix, aspect="auto", origin="lower", cmap="viridis")
    fig.colorbar(im, ax=ax)
    rows, cols = len(matrix), len(matrix[0])
    xticks = list(range(cols)) if xticks is None else list(xticks)
    yticks = list(range(rows)) if yticks is None else list(yticks)
    step = max(1, math.ceil(len(xticks) / 12))
    shown = [str(t) for t in xticks[::step]]
    crowded = len(shown) > 6 and max(map(len, shown)) > 3
    ax.set_xticks(range(0, len(xticks), step), shown, rotation=45 if crowded else 0)
    step = max(1, math.ceil(len(yticks) / 12))
    ax.set_yticks(range(0, len(yticks), step), [str(t) for t in yticks[::step]])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return save(fig, path)


# --- panels of curves (giannou2025's depth-vs-Newton figure) ----------------------------------


def plot_panels(panels: list[dict], path: str | Path) -> Path:
    """One row of panels. Each panel: "lines" [(label, curve, style)] (a curve with y_low/y_high
    gets its band; style goes to `ax.plot`), and optionally "title", "xlabel", "ylabel",
    "xscale"/"yscale" ("log") and "ymin" (a floor for the lower y limit)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, p in zip(axes[0], panels, strict=True):
        for text, c, style in p["lines"]:
            (line,) = ax.plot(c["x"], c["y"], label=label(text), **style)
            if c.get("y_low") is not None and c.get("y_high") is not None:
                ax.fill_between(c["x"], c["y_low"], c["y_high"], alpha=0.2, color=line.get_color())
        ax.set_xscale(p.get("xscale", "linear"))
        ys = [v for _, c, _ in p["lines"] for v in c["y"] if v is not None and v > 0]
        # a log y is asked for; on a linear x it is kept only where the values span a decade
        # (on log–log axes it shows a slope and stays)
        spans = bool(ys) and max(ys) >= 10 * min(ys)
        if p.get("yscale") == "log" and (spans or p.get("xscale") == "log"):
            scale, kw = y_scale([c for _, c, _ in p["lines"]], True)  # symlog where some are 0
            ax.set_yscale(scale, **kw)
        _integer_x(ax, [c["x"] for _, c, _ in p["lines"]])
        ax.set(xlabel=p.get("xlabel", ""), ylabel=p.get("ylabel", ""), title=p.get("title", ""))
        if p.get("ymin") is not None:
            ax.set_ylim(bottom=max(ax.get_ylim()[0], p["ymin"]))
        finish(ax, 7)
    return save(fig, path)
