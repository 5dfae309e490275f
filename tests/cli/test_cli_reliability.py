"""Issue 15 through the CLI: never delete what icsim did not write (an empty --out, a user's
directory, a failed overwrite), refuse what cannot fit or run here with one line (seeds, sizes,
devices), --resume takes no new settings, and `icsim eval` records where its numbers came from."""

import json

import pytest

from icsim.cli import main

TINY = (
    "--dim 3 --n-layer 1 --n-head 1 --n-embd 8 --batch-size 4 --curriculum.no-enabled "
    "--curriculum.dims-start 3 --curriculum.dims-end 3 "
    "--curriculum.points-start 7 --curriculum.points-end 7 --steps 2 --log-every 1 --quiet"
).split()


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.startswith("icsim: error:") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_empty_out_is_refused_and_the_working_directory_survives(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thesis.tex").write_text("mine")
    assert main(["train", "--out", "", "--overwrite", *TINY]) == 2
    one_line_error(capsys, "--out must not be empty")
    assert (tmp_path / "thesis.tex").read_text() == "mine"
    argv = ["reproduce", "garg2022-linear-regression", "--out", "", "--overwrite", "--quiet"]
    assert main(argv) == 2
    one_line_error(capsys, "--out must not be empty")
    assert (tmp_path / "thesis.tex").read_text() == "mine"


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_overwrite_refuses_a_directory_icsim_did_not_create(tmp_path, capsys, command):
    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "results.csv").write_text("1,2,3")
    (mine / "config.json").write_text("{}")  # even a config.json does not make it icsim's
    if command == "train":
        argv = ["train", "--out", str(mine), "--overwrite", *TINY]
    else:
        argv = ["reproduce", "garg2022-linear-regression", "--out", str(mine), "--overwrite"]
    assert main(argv) == 2
    one_line_error(capsys, "was not created by icsim", str(mine))
    assert (mine / "results.csv").read_text() == "1,2,3"


def test_overwrite_replaces_icsim_runs_and_keeps_the_old_one_when_the_new_one_fails(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    (out / "notes.txt").write_text("kept until a new run has started")
    old_config = (out / "config.json").read_text()
    capsys.readouterr()

    import torch

    import icsim.models as T

    def no_memory(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(T, "build", no_memory)
    assert main(["train", "--out", str(out), "--overwrite", *TINY, "--seed", "1"]) == 2
    one_line_error(capsys, "out of memory")
    assert (out / "notes.txt").exists() and (out / "config.json").read_text() == old_config
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left beside it
    monkeypatch.undo()
    # a new run that starts replaces the old one
    assert main(["train", "--out", str(out), "--overwrite", *TINY, "--seed", "1"]) == 0
    assert not (out / "notes.txt").exists()
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_resume_refuses_new_settings(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    (tmp_path / "cfg.json").write_text('{"lr": 0.5}')
    capsys.readouterr()
    for extra in (["--config", str(tmp_path / "cfg.json")], ["--seeds", "2"], ["--lr", "0.5"]):
        assert main(["train", "--resume", str(out), *extra]) == 2
        one_line_error(capsys, "--resume continues a run with its saved config", extra[0])


@pytest.mark.parametrize("device", ["meta", "mps", "xpu", "cuda:x", "cpu:0:1"])
def test_unsupported_device_is_one_clear_line(tmp_path, capsys, device):
    assert main(["train", "--out", str(tmp_path / "r"), *TINY, "--device", device]) == 2
    one_line_error(capsys, repr(device), "'cpu', 'cuda' or 'cuda:N'")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--seed", str(2**70)], "the random generator's range"),
        (["--seeds", "3", "--seed", str(2**64 - 2)], "the random generator's range"),
        (["--batch-size", str(10**11)], "GiB free"),
        (["--n-embd", str(10**7)], "GiB free"),
        (["--dim", str(10**9)], "GiB free"),
    ],
)
def test_what_cannot_fit_is_refused_before_allocating(tmp_path, capsys, flags, needle):
    assert main(["train", "--out", str(tmp_path / "r"), *TINY, *flags]) == 2
    one_line_error(capsys, needle)
    assert not (tmp_path / "r").exists()


def test_seed_beyond_the_generator_in_a_config_file(tmp_path, capsys):
    (tmp_path / "cfg.json").write_text('{"seed": 100000000000000000000000}')
    argv = ["train", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "r"), *TINY]
    assert main(argv) == 2
    one_line_error(capsys, "seed must be at most 2**64 - 1")


def test_construct_sizes_are_bounded(capsys):
    assert main(["construct", "gd", "--steps", str(10**9)]) == 2
    one_line_error(capsys, "--steps must be at most 1,000")
    assert main(["construct", "gd", "--problems", str(10**10)]) == 2
    one_line_error(capsys, "--problems must be at most")


def test_eval_records_provenance_and_refuses_to_replace_an_earlier_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--seed", "7"]) == 0
    assert main(["eval", str(out), "--prompts", "8"]) == 0
    first = json.loads((out / "eval/metrics.json").read_text())
    assert first["checkpoint_step"] == 2 and first["run_seed"] == 7
    assert first["eval_seed"] == 12345 and first["git_commit"] and first["icsim_version"]
    capsys.readouterr()
    assert main(["eval", str(out), "--prompts", "8", "--seed", "1"]) == 2
    one_line_error(capsys, "--overwrite")
    assert json.loads((out / "eval/metrics.json").read_text()) == first
    assert main(["eval", str(out), "--prompts", "8", "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "eval/metrics.json").read_text())["eval_seed"] == 1
    assert main(["eval", str(out), "--prompts", str(10**10), "--overwrite"]) == 2
    one_line_error(capsys, "GiB free", "--prompts")


def test_sigint_during_start_up_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    """Issue 15 item 4: Ctrl-C before the first step (while the model is being built) prints one
    line, not a KeyboardInterrupt traceback, and leaves no half-made run directory."""
    import icsim.models as M

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(M, "build", interrupted)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY]) == 130
    err = capsys.readouterr().err
    assert err.startswith("icsim: interrupted") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists()
