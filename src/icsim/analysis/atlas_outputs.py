"""What an `Atlas` says: a verdict per layer by the stated criteria, a markdown table and a
heatmap (layers × algorithms, colour = best similarity of errors, text = its step)."""

from __future__ import annotations

from pathlib import Path

from icsim.analysis.atlas import CLOSE, CRITERIA, LOOSE, RESOLUTION


def tied(a, layer: int) -> list[int]:
    """Columns not told apart from the best by similarity: distance 1 − similarity at most
    (1 + RESOLUTION) × the best column's (to 1e-9, so an exact match ties only exact ones)."""
    row = a.error_cosine[layer]
    far = (1 + RESOLUTION) * (1 - max(row)) + 1e-9
    return [c for c in range(len(row)) if 1 - row[c] <= far]


def _order(a, layer: int) -> list[int]:
    """Columns from best to worst by `CRITERIA`: first those not told apart from the best
    (`tied`), fewest steps first; then the rest by similarity of errors. Further ties (e.g.
    every algorithm's step 0 predicting 0, or GD++'s first step being GD's) go to the higher
    similarity, then to the column that matches the model best over all layers."""
    row, steps = a.error_cosine[layer], a.step[layer]
    overall = [sum(col) / len(col) for col in zip(*a.error_cosine, strict=True)]
    near = set(tied(a, layer))

    def key(c):
        sim = (-round(row[c], 9), -round(overall[c], 9))
        return (0, steps[c], *sim, c) if c in near else (1, *sim, steps[c], c)

    return sorted(range(len(row)), key=key)


def step_text(a, layer: int, c: int) -> str:
    col = a.columns[c]
    if col["steps"] == [0] and a.step[layer][c] == 0:
        return f"{col['name']} (closed form)" if len(col["steps"]) == 1 else col["name"]
    ge, n = "≥ " if a.at_end[layer][c] else "", a.step[layer][c]
    return f"{ge}{n} {col['name']} step{'s' * (n != 1)}"


def verdicts(a) -> tuple[list[dict], list[str]]:
    """(best match per layer as data, one sentence per layer) by `CRITERIA`."""
    best, texts = [], []
    for layer in range(a.n_layers):
        order = _order(a, layer)
        c = order[0]
        col, sim = a.columns[c], a.error_cosine[layer][c]
        quality = "close" if sim >= CLOSE else "loose" if sim >= LOOSE else "none"
        entry = {
            "layer": layer,
            "column": col["name"],
            "algorithm": col["algorithm"],
            "params": col["params"],
            "step": a.step[layer][c],
            "at_grid_end": a.at_end[layer][c],
            "similarity": sim,
            "quality": quality,
        }
        lead = {"close": "≈", "loose": "loosely like", "none": "matches nothing closely; nearest:"}
        text = f"layer {layer} {lead[quality]} {step_text(a, layer, c)}, similarity {sim:.3f}"
        if a.weight_cosine is not None:
            entry["weight_similarity"] = a.weight_cosine[layer][c]
            text += f" (induced weights {a.weight_cosine[layer][c]:.3f})"
        other = next((k for k in order if a.columns[k]["algorithm"] != col["algorithm"]), None)
        if other is not None:
            o = a.columns[other]
            entry["runner_up"] = {"column": o["name"], "step": a.step[layer][other]}
            needs = "needs" if o["steps"] != [0] else "is"
            what = step_text(a, layer, other).replace(f" {o['name']} step", " step")
            what = what if needs == "needs" else "at"
            gap = sim - a.error_cosine[layer][other]
            entry["runner_up"]["margin"] = gap
            entry["runner_up"]["tied"] = close = other in tied(a, layer)
            text += f"; {o['name']} {needs} {what} (similarity {a.error_cosine[layer][other]:.3f})"
            if close:
                why = "named for fewer steps" if a.step[layer][c] < a.step[layer][other] else "tied"
                text += f" — not told apart by similarity (within {RESOLUTION:.0%}): {why}"
        best.append(entry)
        texts.append(text)
    return best, texts


def rates(a) -> dict:
    """Per iterative column, its best-matching step against the layer (from 1) and Fu et al.'s
    fits of it: linear (step ≈ a + b·ℓ, Newton's) and exponential (log step ≈ a + b·ℓ, GD's)."""
    from icsim.analysis.matching import fit_matched_steps

    out, layers = {}, list(range(1, a.n_layers))
    for c, col in enumerate(a.columns):
        steps = [a.step[layer][c] for layer in layers]
        if col["steps"] == [0] or len(layers) < 3:
            continue
        fits = fit_matched_steps(layers, steps)
        out[col["name"]] = {
            "steps": steps,
            "at_grid_end": [a.at_end[layer][c] for layer in layers],
            "slope": fits["linear"]["slope"],
            "linear_r2": fits["linear"]["r2"],
            "exponential_r2": fits["exponential"]["r2"],
        }
    return out


def markdown(a, title: str = "", image: str | None = "atlas.png") -> str:
    s = a.settings
    mode = "every prefix" if s["prefixes"] else f"queries after {s['n_context']} examples"
    lines = [
        f"# Algorithm atlas{': ' + title if title else ''}",
        "",
        f"Task `{a.task}`, d = {s['dim']}, {s['n_points']} points per prompt ({mode}); "
        f"{s['eval_prompts']} evaluation prompts; read-out: "
        + (
            f"closed-form ridge probes on {s['probe_prompts']} prompts"
            if a.read_out == "probes"
            else "the model's own head"
        )
        + f"; induced weights on {s['weight_prompts']} prompts.",
        "",
        f"Criteria: {CRITERIA.format(close=CLOSE, loose=LOOSE, resolution=RESOLUTION)}.",
        "",
    ]
    if image:
        lines += [f"![atlas heatmap]({image})", ""]
    lines += ["## Verdict per layer", ""] + [f"- {t}" for t in a.verdicts] + [""]
    lines += ["## Best similarity of errors @ step", ""]
    head = ["layer", "error"] + [c["name"] for c in a.columns]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer in range(a.n_layers):
        cells = [str(layer), f"{a.layer_error[layer]:.3g}"]
        for c in range(len(a.columns)):
            ge = "≥" if a.at_end[layer][c] and a.columns[c]["steps"] != [0] else ""
            cells.append(f"{a.error_cosine[layer][c]:.3f} @ {ge}{a.step[layer][c]}")
        lines.append("| " + " | ".join(cells) + " |")
    fits = rates(a)
    if fits:
        lines += [
            "",
            "## Best-matching step by layer (Fu et al.'s rate: linear or exponential)",
            "",
        ]
        lines += ["| column | steps, layer 1 on | steps per layer | linear R² | exponential R² |"]
        lines += ["|---|---|---|---|---|"]
        for name, f in fits.items():
            marks = ["≥" * e for e in f["at_grid_end"]]
            steps = ", ".join(m + str(t) for m, t in zip(marks, f["steps"], strict=True))
            lines.append(
                f"| {name} | {steps} | {f['slope']:.3g} | {f['linear_r2']:.3f} | "
                f"{f['exponential_r2']:.3f} |"
            )
    if a.weight_cosine is not None:
        lines += ["", "## Best similarity of induced weights @ step", ""]
        lines += ["| " + " | ".join(["layer"] + head[2:]) + " |", "|" + "---|" * (len(head) - 1)]
        for layer in range(a.n_layers):
            pairs = zip(a.weight_cosine[layer], a.weight_step[layer], strict=True)
            cells = [f"{w:.3f} @ {st}" for w, st in pairs]
            lines.append("| " + " | ".join([str(layer), *cells]) + " |")
    if a.skipped:
        lines += ["", "## Not compared", ""]
        lines += [f"- `{k}`: {v}" for k, v in a.skipped.items()]
    lines += ["", "Every number above is in `atlas.json`."]
    return "\n".join(lines) + "\n"


def heatmap(a, path: str | Path, title: str = "") -> Path:
    """Layers (rows) × algorithms (columns): colour = best similarity of errors (cividis, which
    reads the same to colour-blind eyes), text = the best-matching step (≥: the grid's end),
    outline = the verdict's column."""
    import numpy as np

    from icsim.analysis.plots import plt, save

    m = np.array(a.error_cosine, dtype=float)
    L, C = m.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * C + 2.5), max(3.0, 0.4 * L + 2.0)))
    low = float(np.clip(np.nanmin(m), -1, 0.9))
    im = ax.imshow(m, aspect="auto", origin="lower", cmap="cividis", vmin=low, vmax=1.0)
    fig.colorbar(im, ax=ax, label="similarity of errors (best step)")
    for i in range(L):
        for j in range(C):
            closed = a.columns[j]["steps"] == [0]
            text = "cf" if closed else ("≥" * a.at_end[i][j]) + str(a.step[i][j])
            dark = (m[i, j] - low) / max(1.0 - low, 1e-9) < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="w" if dark else "k")
    names = [c["name"] for c in a.columns]
    for entry in a.best:  # the verdict's column, outlined (Okabe–Ito vermillion)
        col = names.index(entry["column"])
        box = plt.Rectangle((col - 0.5, entry["layer"] - 0.5), 1, 1, fill=False, lw=2)
        ax.add_patch(box.set_edgecolor("#d55e00") or box)
    ax.set_xticks(range(C), names, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(L), [str(i) for i in range(L)])
    ax.set_xlabel("algorithm (text: best-matching step; cf = closed form)")
    ax.set_ylabel("layer (0 = embedding)")
    ax.set_title(title or f"algorithm atlas ({a.task})", fontsize=9)
    return save(fig, path)
