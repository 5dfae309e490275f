"""A newcomer's first hour with `icsim` (issue 17): each item's CLI behaviour."""

import json
from dataclasses import fields

import pytest

from icsim.cli import main
from icsim.errors import InputError
from icsim.training.config import Curriculum, TrainConfig

SMALL = "--n-layer 1 --n-head 1 --n-embd 8 --batch-size 4 --steps 2 --log-every 1".split()


def test_train_dim_5_runs_with_the_curriculum_following_dim(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["train", "--dim", "5", "--out", str(out), "--quiet", *SMALL]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["dim"] == 5 and train["curriculum"]["dims_end"] is None
    assert json.loads((out / "config.json").read_text())["model_config"]["max_positions"] == 22


def help_text(capsys, *argv) -> str:
    """`icsim ARGV --help` as one line of words (the box drawing and wrapping removed)."""
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_every_train_flag_has_its_own_description_from_the_field_docstring(capsys):
    from tyro._docstrings import get_field_docstring

    sections = {"task", "model", "optimisation", "run", "optimization"}
    seen = []
    for cls in (TrainConfig, Curriculum):
        for f in fields(cls):
            doc = get_field_docstring(cls, f.name, ())
            assert doc and doc.strip().lower() not in sections, (cls.__name__, f.name, doc)
            seen.append(doc)
    assert len(set(seen)) == len(seen)  # each flag its own line, none shared
    text = help_text(capsys, "train")
    assert text.count("usage:") == 1
    assert "--log-every INT steps between rows of metrics.jsonl" in text
    assert "--checkpoint-every INT steps between checkpoints" in text
    assert "--curriculum.dims-end {None}|INT active dimensions at the end" in text


def test_eval_and_reproduce_flags_are_described(capsys):
    assert "--prompts INT prompts to evaluate on" in help_text(capsys, "eval")
    text = help_text(capsys, "reproduce", "garg2022-linear-regression")
    assert "--profile {full,quick} which settings: quick" in text
    text = help_text(capsys, "reproduce")  # each reproduction with its title and cost
    assert "garg2022-linear-regression In-context linear regression" in text
    assert "quick: ~5 min on 2 CPU cores" in text


def test_list_and_describe_show_descriptions_parameters_papers_and_costs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  iterative_newton             S = XᵀX" in out  # a name and its one-line description
    assert main(["list", "tasks", "-v"]) == 0
    out = capsys.readouterr().out
    assert "algorithms:" not in out and "linear_regression (task)" in out
    assert "condition_number = 1.0" in out and "paper: Garg et al. 2022" in out
    assert main(["describe", "garg2022-linear-regression"]) == 0
    out = capsys.readouterr().out
    assert "cost of --profile quick: ~5 min on 2 CPU cores" in out and "NeurIPS 2022" in out
    assert main(["describe", "iterative_newtn"]) == 2
    assert "Did you mean 'iterative_newton'" in capsys.readouterr().err


def test_every_experiment_is_found_from_source_with_both_costs():
    from icsim.catalog import experiment_headers
    from icsim.experiments import EXPERIMENTS

    headers = experiment_headers()
    assert list(headers) == EXPERIMENTS.names()
    for name, h in headers.items():
        assert h["title"] == EXPERIMENTS.get(name).title
        assert h["cost"] == EXPERIMENTS.get(name).cost  # a literal, read without importing
    first_six = ("garg2022", "vonoswald2023", "fu2024", "giannou2025", "wu2025", "liu2025")
    for name, h in headers.items():
        if name.startswith(first_six):
            assert set(h["cost"]) >= {"quick", "full"}, name


@pytest.fixture
def laptop(monkeypatch):
    """A fixed matmul rate (50 GFLOP/s, a laptop core pair) and a Trainer that does not train:
    what runs and what is said before training, independent of this machine's load."""
    from icsim import estimate
    from icsim.training.trainer import Trainer

    monkeypatch.setattr(estimate, "device_flops", lambda device="cpu": 50e9)
    monkeypatch.setattr(Trainer, "train", lambda self, stop_after=None: {"step": 0, "loss": 1.0})


def saved_train(out):
    return json.loads((out / "config.json").read_text())["train"]


def test_bare_train_on_a_cpu_is_the_small_preset(tmp_path, capsys, laptop):
    assert main(["train", "--out", str(tmp_path / "x")]) == 0
    train, err = saved_train(tmp_path / "x"), capsys.readouterr().err
    assert (train["n_layer"], train["n_embd"], train["steps"], train["dim"]) == (4, 64, 6000, 5)
    assert "the cpu-small preset" in err and "--preset garg2022" in err and "warning" not in err
    # a flag overrides the preset's value; a size flag alone leaves the paper's defaults
    assert main(["train", "--out", str(tmp_path / "y"), "--dim", "3", "--quiet"]) == 0
    assert (saved_train(tmp_path / "y")["dim"], saved_train(tmp_path / "y")["n_layer"]) == (3, 4)


def test_a_run_over_an_hour_warns_with_the_estimate_and_a_smaller_run(tmp_path, capsys, laptop):
    assert main(["train", "--preset", "garg2022", "--out", str(tmp_path / "x"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "is estimated at" in err and "days on this CPU" in err and "--preset cpu-small" in err
    assert "starting anyway" in err  # not a terminal: it proceeds, the warning logged
    assert saved_train(tmp_path / "x")["n_layer"] == 12


def test_at_a_terminal_a_long_run_asks_first(tmp_path, capsys, laptop, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    out = tmp_path / "x"
    assert main(["train", "--steps", "500000", "--n-layer", "12", "--out", str(out)]) == 2
    assert "not started" in capsys.readouterr().err and not out.exists()
    assert main(["train", "--steps", "500000", "--out", str(out), "--yes", "--quiet"]) == 0


def test_a_full_reproduction_without_a_gpu_warns_first(tmp_path, capsys, laptop, monkeypatch):
    import icsim.experiments

    def stop(*a, **k):
        raise InputError("stopped by the test")

    monkeypatch.setattr(icsim.experiments, "reproduce", stop)
    argv = ["reproduce", "garg2022-linear-regression", "--profile", "full", "--out", "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "garg2022-linear-regression --profile full (its stated cost: ~7 GPU-hours" in err
    assert "--profile quick (~5 min on 2 CPU cores)" in err and "--smoke" in err
    assert main([*argv[:3], "quick"]) == 2  # the quick profile: no warning
    assert "warning" not in capsys.readouterr().err
