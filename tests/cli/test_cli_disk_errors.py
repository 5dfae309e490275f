"""A full or read-only disk gives one clear error (exit 2 from the CLI) and loses nothing already
written (issue 8). A full disk is simulated by making fsync fail with ENOSPC, which is where a
real one reports it at the latest."""

import errno
import os

import pytest

from icsim import rundir
from icsim.cli import main
from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig, Trainer
from icsim.training import checkpoint as ckpt

CFG = TrainConfig(
    dim=3, n_layer=1, n_head=1, n_embd=8, steps=20, batch_size=4, log_every=5,
    checkpoint_every=5, curriculum=Curriculum(enabled=False, dims_end=3, points_end=5),
)  # fmt: skip
FLAGS = ["--dim", "3", "--n-layer", "1", "--n-head", "1", "--n-embd", "8", "--steps", "5",
         "--batch-size", "4", "--curriculum.no-enabled", "--curriculum.dims-end", "3",
         "--curriculum.points-end", "5", "--quiet"]  # fmt: skip


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def snapshot(run):
    """Every file under `run` except the append-only log, with its bytes."""
    return {
        p.relative_to(run): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != "metrics.jsonl"
    }


@pytest.fixture
def half_run(tmp_path):
    """A run stopped at step 10 (checkpoints 5 and 10), to be continued on a full disk."""
    run = tmp_path / "run"
    Trainer(CFG, run, quiet=True).train(stop_after=10)
    return run


def test_full_disk_at_a_checkpoint_keeps_the_previous_one(half_run, monkeypatch):
    before = snapshot(half_run)
    log = (half_run / "metrics.jsonl").read_text()
    trainer = Trainer.resume(half_run, quiet=True)
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ckpt.CheckpointError) as err:
        trainer.train()
    msg = str(err.value)
    assert "step_00000015" in msg and "No space left on device" in msg
    assert "step_00000010 is intact" in msg and "--resume" in msg and "\n" not in msg
    assert isinstance(err.value, InputError)
    monkeypatch.undo()
    assert snapshot(half_run) == before  # nothing lost, no debris
    assert not [p for p in (half_run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert (half_run / "metrics.jsonl").read_text().startswith(log)
    trainer = Trainer.resume(half_run, quiet=True)  # space freed: carry on
    assert trainer.step == 10
    assert trainer.train()["step"] == 20


def test_full_disk_through_the_cli_is_one_line_exit_2(half_run, monkeypatch, capsys):
    before = snapshot(half_run)
    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["train", "--resume", str(half_run), "--quiet"]) == 2
    err = capsys.readouterr().err
    # the first fsync on resume is the atomic rewrite of the log (or, later, a checkpoint)
    assert err.startswith("icsim: error: cannot write ") and err.count("\n") == 1
    assert "No space left on device" in err and "Traceback" not in err
    monkeypatch.undo()
    assert snapshot(half_run) == before


def test_full_disk_on_a_plain_write_is_one_line_exit_2(half_run, monkeypatch, capsys):
    # an OSError from a write the library does not wrap (here the metrics log) reaches the CLI
    def log(self, k, row):
        path = self.run_dirs[k] / "metrics.jsonl"
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    before = snapshot(half_run)
    monkeypatch.setattr(Trainer, "_write_row", log)
    assert main(["train", "--resume", str(half_run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icsim: error: cannot write") and "metrics.jsonl" in err
    assert "No space left on device" in err and err.count("\n") == 1
    assert snapshot(half_run) == before
    with pytest.raises(OSError):  # --debug lets it through, traceback and all
        main(["train", "--resume", str(half_run), "--quiet", "--debug"])


def test_full_disk_for_a_json_file_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    rundir.write_json(path, {"a": 1})
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(InputError, match=r"cannot write .*metrics.json: No space left on device"):
        rundir.write_json(path, {"a": 2})
    assert path.read_text() == '{\n "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_full_disk_when_creating_a_run_directory_leaves_nothing(tmp_path, monkeypatch, capsys):
    import pathlib

    def write_text(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    out = tmp_path / "new" / "run"
    assert main(["train", "--out", str(out), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert "cannot write to output directory" in err and "No space left" in err
    assert not (tmp_path / "new").exists()  # what it made, it removed


def read_only(tmp_path, monkeypatch, how):
    """A directory that refuses writes: by permissions where that binds (not as root), else by
    making every directory creation and file open for writing fail with EROFS."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions; the 'erofs' case covers this")
        ro.chmod(0o500)
        return ro
    import pathlib

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    monkeypatch.setattr(pathlib.Path, "write_text", refuse)
    return ro


@pytest.mark.parametrize("how", ["chmod", "erofs"])
def test_read_only_output_directory(tmp_path, monkeypatch, capsys, how):
    ro = read_only(tmp_path, monkeypatch, how)
    try:
        with pytest.raises(InputError, match=f"cannot write to output directory {ro}/run"):
            rundir.prepare(ro / "run")
        assert main(["train", "--out", str(ro / "run"), *FLAGS]) == 2
        err = capsys.readouterr().err
        assert err.startswith("icsim: error: cannot write to output directory")
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not (ro / "run").exists()
    finally:
        ro.chmod(0o700)


def test_existing_output_directory_is_kept_without_overwrite(half_run, capsys):
    before = snapshot(half_run)
    assert main(["train", "--out", str(half_run), *FLAGS]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert snapshot(half_run) == before
    assert main(["train", "--out", str(half_run), "--overwrite", *FLAGS]) == 0
    assert [c.name for c in ckpt.list_checkpoints(half_run)] == ["step_00000005"]


def test_output_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("keep me")
    assert main(["train", "--out", str(tmp_path / "f"), *FLAGS]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "keep me"
