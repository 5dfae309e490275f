"""Progress without a terminal and the end of a run (issue 17, items 4 and 5)."""

import json

import pytest

from icsim.cli import main

TINY = (
    "--dim 3 --n-layer 1 --n-head 1 --n-embd 8 --batch-size 4 --curriculum.no-enabled "
    "--steps 4 --log-every 1"
).split()


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    """A smoke reproduction of Garg et al.'s quick profile (seconds): its directory and stderr."""
    out = tmp_path_factory.mktemp("repro") / "garg"
    cap = pytest.MonkeyPatch()
    import contextlib
    import io

    err = io.StringIO()
    with cap.context() as m, contextlib.redirect_stderr(err):
        m.setenv("ICSIM_PROGRESS_SECONDS", "0")
        assert main(["reproduce", "garg2022-linear-regression", "--smoke", "--out", str(out)]) == 0
    return out, err.getvalue()


def test_training_without_a_terminal_prints_progress_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ICSIM_PROGRESS_SECONDS", "0")
    assert main(["train", "--out", str(tmp_path / "run"), *TINY]) == 0
    err = capsys.readouterr().err
    assert "icsim: run: step 1/4 (25%) loss " in err and "icsim: run: step 4/4 (100%)" in err
    assert "steps/s, ETA " in err


def test_a_reproduction_reports_each_stage(reproduction):
    _, err = reproduction
    stages = [
        "garg2022-linear-regression: started",
        "garg2022-linear-regression: training model 1: train (2 steps)",
        "step 2/2 (100%)",
        "garg2022-linear-regression: evaluating on 8 prompts; baselines",
        "garg2022-linear-regression: figures",
        "garg2022-linear-regression: training-loss figures, metrics.json and report.md",
        "garg2022-linear-regression: done in",
    ]
    positions = [err.find(s) for s in stages]
    assert -1 not in positions and positions == sorted(positions), err


def test_the_end_of_a_run_says_where_it_is_its_loss_and_what_next(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet", *TINY]) == 0
    std = capsys.readouterr()
    assert json.loads(std.out.splitlines()[-1])["run_dir"] == str(out)  # for scripts
    assert f"trained to step 4 in {out} (final training loss " in std.err
    assert f"next: icsim eval {out}" in std.err


def test_eval_of_a_reproduction_finds_its_model_and_prints_a_table(reproduction, capsys):
    out, _ = reproduction
    assert main(["eval", str(out), "--prompts", "16"]) == 0
    text = capsys.readouterr()
    assert "holds 1 trained model(s): train" in text.err
    lines = text.out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["k"])
    assert lines[header].split()[:3] == ["k", "transformer", "least_squares"]
    assert set(lines[header + 1]) <= {"-", " "}
    first = lines[header + 2].split()
    assert first[0] == "0" and first[2].startswith("[")  # k = 0: mean [low, high]
    assert (out / "train" / "eval" / "metrics.json").is_file()
