"""`icsim atlas RUN_DIR`: on a construction, a trained run and a reproduction directory holding
runs; bad input (not a run, a task no algorithm applies to, no model) is one error, exit 2."""

import json

import pytest

from icsim.cli import main
from icsim.training import Curriculum, TrainConfig, Trainer

FAST = ["--eval-prompts", "12", "--probe-prompts", "32", "--weight-prompts", "3", "--max-step", "4"]


def tiny_run(path, task="linear_regression", dim=2):
    cfg = TrainConfig(
        task=task, dim=dim, n_layer=1, n_head=1, n_embd=8, steps=1, batch_size=4,
        checkpoint_every=1, curriculum=Curriculum(enabled=False, dims_end=dim, points_end=5),
    )  # fmt: skip
    Trainer(cfg, path, quiet=True).train()
    return path


def test_atlas_of_a_construction_writes_table_json_and_heatmap(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["atlas", "gd:dim=2,steps=2", "--out", str(out), *FAST]) == 0
    data = json.loads((out / "atlas.json").read_text())
    assert data["best"][2]["column"] == "gradient_descent(step_size=0.1)"
    assert data["best"][2]["step"] == 2 and "criteria" in data
    assert (out / "atlas.png").stat().st_size > 0 and "layer 2 ≈" in capsys.readouterr().out
    assert main(["atlas", "gd:dim=2,steps=2", "--out", str(out), *FAST]) == 2  # no --overwrite


def test_atlas_of_a_reproduction_directory_draws_one_per_trained_run(tmp_path):
    repro = tmp_path / "repro"
    tiny_run(repro / "train-transformer")
    assert main(["atlas", str(repro), *FAST]) == 0
    data = json.loads((repro / "atlas" / "atlas.json").read_text())
    assert data["task"] == "linear_regression" and data["read_out"] == "probes"


CASES = ["missing", "empty", "not_a_run", "empty_name", "no_algorithm", "bad_param"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_exit_2(case, tmp_path, capsys):
    target = {
        "missing": str(tmp_path / "nope"),
        "empty": str(tmp_path),
        "not_a_run": str(tmp_path / "notes"),
        "empty_name": "",
        "no_algorithm": str(tmp_path / "run"),
        "bad_param": "gd:steps",
    }[case]
    if case == "not_a_run":  # a folder with files, none of them a run
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "config.json").write_text("{}")
    if case == "no_algorithm":  # no registered algorithm has family sparse_linear_regression
        tiny_run(tmp_path / "run", "sparse_linear_regression", dim=4)
    assert main(["atlas", target, "--out", str(tmp_path / "out"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("icsim: error:") == 1 and "Traceback" not in err
    expected = {
        "missing": "does not exist",
        "empty": "holds no trained model",
        "not_a_run": "holds no trained model",
        "empty_name": "no run given",
        "no_algorithm": "no registered algorithm applies to task 'sparse_linear_regression'",
        "bad_param": "needs key=value",
    }[case]
    assert expected in err


def test_no_run_dir_at_all_is_a_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:  # the parser's usage error, as for any command
        main(["atlas"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "RUN_DIR" in err and "Traceback" not in err
