"""Tiny synthetic directories for the report-site tests (written here in a second, not trained),
and a headless-Chromium page loader speaking the DevTools protocol over a pipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icsim.analysis.atlas import atlas
from icsim.analysis.plots import plot_curves
from icsim.report_site.browser import find_chromium, load_page
from icsim.report_site.sources import construction_source

REPORT = """# In-context linear regression (Garg et al. 2022, Fig. 2)

Reproduction `garg2022-linear-regression` of Garg et al., *What Can Transformers Learn*.

## Our numbers beside the paper's

| quantity | ours | paper | note |
|---|---|---|---|
| transformer error at k = d | {err} | 0.02 | paper: d = 20 |

## The paper's findings, judged from our numbers

- ✅ As in the paper, least squares is exact past k = d.
- {mark} The transformer's error falls past k = d.

## Figures

![error_vs_examples](error_vs_examples.png)

## How this was measured

Every curve is the normalised squared error on `8` prompts.
"""


def reproduction(root: Path, name: str, err: float, mark: str, commit: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    ks = list(range(6))
    curves = {
        "transformer": {"x": ks, "y": [1 / (k + 1) + err for k in ks], "x_label": "k",
                        "y_label": "squared error / d"},
        "least_squares": {"x": ks, "y": [1.0, 0.5, 1e-3, 1e-9, 1e-12, 1e-12], "x_label": "k",
                          "y_label": "squared error / d"},
    }  # fmt: skip
    metrics = {
        "experiment": "garg2022-linear-regression", "profile": "quick", "device": "cpu",
        "icsim_version": "0.1.0", "git_commit": commit, "wall_seconds": 12.0, "curves": curves,
        "scalars": {"transformer_error_at_k_eq_d": err},
        "paper": {"transformer_error_at_k_eq_d": 0.02},
    }  # fmt: skip
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "config.json").write_text(json.dumps({"experiment": metrics["experiment"], "config": {}}))
    (d / "report.md").write_text(REPORT.format(err=err, mark=mark))
    plot_curves(curves, d / "error_vs_examples.png", logy=True)
    return d


@pytest.fixture(scope="session")
def site_dirs(tmp_path_factory) -> list[Path]:
    """Two reproductions of one experiment (one passes, one differs), a training run with a
    loss log, and an atlas of the gd construction."""
    root = tmp_path_factory.mktemp("runs")
    a = reproduction(root, "garg-seed0", 0.01, "✅", "aaaa1111")
    b = reproduction(root, "garg-seed1", 0.3, "❌", "bbbb2222")
    run = root / "train-run"
    (run / "checkpoints" / "step_00000002").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "linear_regression", "dim": 3}))
    rows = [{"step": s, "loss": 2.0 / s} for s in (1, 2)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = construction_source("gd:dim=2,steps=2")
    res = atlas(src.model, src.fmt, src.task, n_points=src.n_points, extra=src.extra,
                sample=src.sample, eval_prompts=16, weight_prompts=4, max_step=8)  # fmt: skip
    res.write(run / "atlas", "gd")
    return [a, b, run]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "no Chromium found (looked for chromium, chromium-browser, google-chrome and "
            "Playwright's): install it with `apt-get install -y chromium` to run the browser test"
        )
    return path


@pytest.fixture(scope="session")
def browse():
    return load_page
