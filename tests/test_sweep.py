"""`icsim sweep`: a 4-run grid on a local Ray instance; finished runs are skipped on re-launch."""

import json
import shutil

import pytest

from icsim.errors import InputError
from icsim.sweep import expand, read_spec, run_sweep

BASE = {
    "dim": 2,
    "n_layer": 1,
    "n_head": 1,
    "n_embd": 8,
    "steps": 4,
    "batch_size": 8,
    "log_every": 2,
    "checkpoint_every": 2,
    "curriculum": {
        "enabled": False,
        "dims_start": 2,
        "dims_end": 2,
        "points_start": 5,
        "points_end": 5,
    },
}


def test_expand_and_bad_specs(tmp_path):
    spec = {
        "out": str(tmp_path),
        "base": BASE,
        "grid": {"seed": [0, 1], "curriculum.dims_end": [2]},
    }
    runs = expand(spec)
    assert [n for n, _ in runs] == ["dims_end=2-seed=0", "dims_end=2-seed=1"]
    assert runs[1][1].seed == 1 and runs[1][1].curriculum.dims_end == 2
    with pytest.raises(InputError, match="no key 'n_layers'"):
        expand({"out": "x", "base": BASE, "grid": {"n_layers": [1]}})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"out": "x", "grid": {"seed": []}}))
    with pytest.raises(InputError, match="non-empty list"):
        read_spec(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_spec(path)


def test_four_runs_on_local_ray_then_skip_finished(tmp_path, capfd):
    pytest.importorskip("ray")
    spec = {
        "out": str(tmp_path / "sweep"),
        "base": BASE,
        "grid": {"seed": [0, 1], "n_layer": [1, 2]},
    }
    rows = run_sweep(spec, quiet=True)
    assert [r["status"] for r in rows] == ["done"] * 4
    # Ray's start-up lines go to its own log file, not the terminal (issue 15 item 20)
    err = capfd.readouterr().err
    assert "INFO" not in err and "Started a local Ray instance" not in err, err
    assert (tmp_path / "sweep" / "ray.log").exists()
    assert all(r["step"] == 4 for r in rows)
    for r in rows:
        assert (tmp_path / "sweep" / r["run"] / "config.json").exists()
    # a relaunch skips every finished run; an unfinished one (newest checkpoint gone) resumes
    victim = tmp_path / "sweep" / rows[0]["run"]
    shutil.rmtree(victim / "checkpoints" / "step_00000004")
    again = run_sweep(spec, quiet=True)
    statuses = {r["run"]: r["status"] for r in again}
    assert statuses[rows[0]["run"]] == "done"
    assert sum(s.startswith("skipped") for s in statuses.values()) == 3


def test_cli_dry_run_lists_the_grid(tmp_path):
    from icsim.cli import main

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"out": "x", "base": BASE, "grid": {"seed": [3, 4]}}))
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    spec.write_text(json.dumps({"out": "x", "grid": {"seed": [1]}, "extra": 1}))
    assert main(["sweep", str(spec)]) == 2


@pytest.mark.parametrize(
    "spec, needle",
    [
        ({"out": "x", "base": "lr=1"}, "'base' must be an object"),
        ({"out": "x", "base": [1]}, "'base' must be an object"),
        ({"out": "x", "base": BASE, "grid": {"dim.x": [1]}}, "'dim' is not a nested config"),
        ({"out": "x", "retries": -3}, "retries' must be a non-negative integer"),
        ({"out": "x", "cpus_per_run": "many"}, "cpus_per_run' must be a finite number"),
        ({"out": "", "grid": {}}, "needs 'out'"),
        ({"out": "x", "base": BASE, "grid": {"device": ["../../../escaped"]}}, "not supported"),
        ({"out": "x", "base": BASE, "grid": {"lr": [0.001, 1e-3]}}, "same run once parsed"),
    ],
)
def test_every_part_of_a_spec_is_checked_before_ray(tmp_path, spec, needle):
    """Issue 15 items 17-19: one InputError before Ray starts, never a traceback."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        read_spec(path)


def test_spec_files_that_are_not_json_text(tmp_path):
    path = tmp_path / "spec.json"
    path.write_bytes(b'{"out": "\xff\xfe"}')
    with pytest.raises(InputError, match="not UTF-8"):
        read_spec(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="not valid JSON"):
        read_spec(path)


def test_run_names_are_sanitised_parsed_and_inside_out(tmp_path):
    base = {**BASE, "task_params": {}}
    spec = {"out": str(tmp_path), "base": base, "grid": {"lr": [1e-3, 2], "schedule": ["cosine"]}}
    names = [n for n, _ in expand(spec)]
    assert names == ["lr=0.001-schedule=cosine", "lr=2.0-schedule=cosine"]
    odd = {"out": str(tmp_path), "base": base, "grid": {"task": ["a/../../b"]}}
    with pytest.raises(InputError):  # not a task: refused by the config check itself
        expand(odd)
    from dataclasses import replace

    from icsim.sweep import run_name

    cfg = replace(expand(spec)[0][1], device="../x/y")
    assert run_name(["device"], cfg) == "device=.._x_y"
