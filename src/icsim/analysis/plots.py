"""Figures drawn from metrics.json curves alone (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path: str | Path) -> Path:
    """Lay out, write (PNG, 120 dpi; the folder is made if missing) and close a figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def finish(ax, fontsize: int = 8) -> None:
    """The legend and light grid every panel gets."""
    ax.legend(fontsize=fontsize)
    ax.grid(alpha=0.3)


def plot_curves(
    curves: dict,
    path: str | Path,
    *,
    title: str = "",
    logy: bool = False,
    vline: float | None = None,
    vline_label: str = "",
    hlines: dict | None = None,
) -> Path:
    """One line per curve (a `Curve` or its metrics.json dict) with its interval band where the
    curve has one; `hlines` maps a label to a reference level drawn dashed."""
    curves = {k: c.to_json() if hasattr(c, "to_json") else c for k, c in curves.items()}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        (line,) = ax.plot(c["x"], c["y"], label=name, marker="." if len(c["x"]) < 30 else None)
        if c.get("y_low") is not None and c.get("y_high") is not None:
            ax.fill_between(c["x"], c["y_low"], c["y_high"], alpha=0.2, color=line.get_color())
    first = next(iter(curves.values()))
    ax.set_xlabel(first.get("x_label", ""))
    ax.set_ylabel(first.get("y_label", ""))
    if logy:
        ax.set_yscale("log")
    if vline is not None:
        ax.axvline(vline, color="grey", linestyle=":", label=vline_label or None)
    for label, level in (hlines or {}).items():
        ax.axhline(level, linestyle="--", lw=1, color="black", alpha=0.6, label=label)
    ax.set_title(title)
    finish(ax)
    return save(fig, path)


def plot_heatmap(
    matrix, path: str | Path, *, xlabel: str, ylabel: str, title: str = "", xticks=None, yticks=None
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    im = ax.imshow(matrix, aspect="auto", origin="lower", cmap="viridis")
    fig.colorbar(im, ax=ax)
    if xticks is not None:
        step = max(1, len(xticks) // 10)
        ax.set_xticks(range(0, len(xticks), step), [str(t) for t in xticks[::step]])
    if yticks is not None:
        ax.set_yticks(range(len(yticks)), [str(t) for t in yticks])
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
        for label, c, style in p["lines"]:
            (line,) = ax.plot(c["x"], c["y"], label=label, **style)
            if c.get("y_low") is not None and c.get("y_high") is not None:
                ax.fill_between(c["x"], c["y_low"], c["y_high"], alpha=0.2, color=line.get_color())
        ax.set(xscale=p.get("xscale", "linear"), yscale=p.get("yscale", "linear"))
        ax.set(xlabel=p.get("xlabel", ""), ylabel=p.get("ylabel", ""), title=p.get("title", ""))
        if p.get("ymin") is not None:
            ax.set_ylim(bottom=max(ax.get_ylim()[0], p["ymin"]))
        finish(ax, 7)
    return save(fig, path)
