"""`icsim reproduce NAME --profile full --smoke` (issue 14): every stage of every full profile
runs on the CPU at the profile's model and prompt shapes, with steps and evaluation sizes cut.
This is the suite's one longer test (a few minutes for all experiments)."""

import json
import time

import pytest

import icsim.experiments as E
from icsim.cli import main
from icsim.experiments.base import smoke_cuts

# what a smoke run must never cut: the shapes of the models and of the prompts
SHAPES = {"dim", "n_layer", "n_head", "n_embd", "points_end", "dims_end", "n_points", "depths",
          "n_context", "n_examples", "long_examples", "n_demos", "widths", "width", "attention",
          "task", "token_format", "model", "condition_numbers", "attentions"}  # fmt: skip


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("name", E.names())
def test_full_profile_smoke_runs_every_stage_on_the_cpu(name, tmp_path, capsys):
    exp = E.EXPERIMENTS.get(name)
    full = exp.profile("full")
    cuts = smoke_cuts(exp, full)
    for key, value in cuts.items():  # a shape is never changed; a list of shapes keeps its ends
        if key.split(".")[-1] in SHAPES:
            before = tuple(_get(full, key))
            assert isinstance(value, tuple) and set(value) <= set(before), (key, value)
            assert value[0] == before[0] and value[-1] == before[-1], (key, value, before)
    out = tmp_path / "smoke"
    t0 = time.perf_counter()
    code = main(["reproduce", name, "--profile", "full", "--smoke", "--out", str(out), "--quiet"])
    wall = time.perf_counter() - t0
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "config.json").read_text())
    assert saved["smoke"] is True and saved["profile"] == "full"
    assert (out / "metrics.json").exists() and (out / "report.md").exists()
    print(f"{name}: full --smoke in {wall:.0f} s")
