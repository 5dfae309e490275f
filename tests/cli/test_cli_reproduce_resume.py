"""`icsim reproduce --resume DIR` (issue 15, item 9): a reproduction SIGKILLed during its training
stage continues from its newest intact checkpoint and ends with the metrics.json numbers of an
uninterrupted run; what is not a reproduction is refused in one line."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from icsim.cli import main
from icsim.training import checkpoint as ckpt

GARG = "garg2022-linear-regression"
STEPS = 300
# the quick profile at a tiny size (its curriculum stepping every 50 steps), with a checkpoint
# every 20 steps so that a kill lands mid-training
TINY = ["--train.n-layer", "2", "--train.n-head", "2", "--train.n-embd", "16",
        "--train.steps", str(STEPS), "--train.batch-size", "32", "--train.lr", "0.003",
        "--train.warmup-steps", "20", "--train.log-every", "10", "--train.checkpoint-every", "20",
        "--train.curriculum.interval", "50", "--eval-prompts", "64"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(*args):
    cmd = [sys.executable, "-m", "icsim.cli", *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def icsim(*args) -> str:
    """Run icsim to its end; its stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "icsim.cli", *args], env=ENV, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def newest_step(run):
    names = [c.name for c in ckpt.list_checkpoints(run)]
    return int(names[-1].removeprefix(ckpt.PREFIX)) if names else -1


def numbers(out):
    """metrics.json without its timing and provenance fields (and the measured steps/s)."""
    m = json.loads((out / "metrics.json").read_text())
    scalars = {k: v for k, v in m["scalars"].items() if "per_s" not in k}
    return m["curves"], scalars


def test_a_reproduction_killed_in_training_resumes_to_the_uninterrupted_numbers(tmp_path):
    t0 = time.perf_counter()
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    icsim("reproduce", GARG, "--out", str(whole), "--quiet", *TINY)
    proc = start("reproduce", GARG, "--out", str(cut), "--quiet", *TINY)
    deadline = time.monotonic() + 240
    while newest_step(cut / "train") < 2 * 20:  # killed after a few checkpoints
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never reached its second checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = newest_step(cut / "train")
    assert 0 < killed_at < STEPS and not (cut / "metrics.json").exists()

    err = icsim("reproduce", "--resume", str(cut))
    assert f"resumed {cut / 'train'} from step {killed_at}." in err  # not trained again
    assert newest_step(cut / "train") == STEPS
    assert numbers(cut) == numbers(whole)
    saved = json.loads((cut / "config.json").read_text())
    assert saved["config"] == json.loads((whole / "config.json").read_text())["config"]
    # the training log is the uninterrupted run's, row for row (timing aside)
    logs = [
        [{k: v for k, v in json.loads(ln).items() if k != "steps_per_s"} for ln in lines]
        for lines in (open(d / "train" / "metrics.jsonl").read().splitlines() for d in (cut, whole))
    ]
    assert logs[0] == logs[1] and logs[0][-1]["step"] == STEPS

    # resumed again once finished, nothing is trained or rewritten
    before = (cut / "metrics.json").read_text()
    assert "finished reproduction: nothing to resume" in icsim("reproduce", "--resume", str(cut))
    assert (cut / "metrics.json").read_text() == before
    print(f"killed at step {killed_at}; kill + resume test in {time.perf_counter() - t0:.0f} s")


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.startswith("icsim: error:") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_resume_of_what_is_not_a_reproduction_is_refused(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["reproduce", "--resume", str(mine)]) == 2
    one_line_error(capsys, "not an icsim reproduction")
    assert (mine / "notes.txt").read_text() == "keep" and sorted(os.listdir(mine)) == ["notes.txt"]

    assert main(["reproduce", "--resume", str(tmp_path / "absent")]) == 2
    one_line_error(capsys, "no such directory")
    assert not (tmp_path / "absent").exists()

    run = tmp_path / "run"  # an icsim train run: pointed at icsim train --resume
    flags = ["--steps", "1", "--dim", "2", "--n-layer", "1", "--n-head", "1", "--n-embd", "8",
             "--batch-size", "2", "--curriculum.no-enabled", "--curriculum.dims-end", "2",
             "--curriculum.points-end", "3", "--quiet"]  # fmt: skip
    assert main(["train", "--out", str(run), *flags]) == 0
    capsys.readouterr()
    assert main(["reproduce", "--resume", str(run)]) == 2
    one_line_error(capsys, "icsim train --resume")


@pytest.fixture
def reproduction(tmp_path):
    """A reproduction directory as a killed run leaves it: config.json, marker, no metrics."""
    from icsim import rundir
    from icsim.experiments.base import _asdict

    exp_cfg = __import__("icsim.experiments", fromlist=["get"]).get(GARG).profile("quick")
    out = rundir.prepare(tmp_path / "r")
    record = {"experiment": GARG, "profile": "quick", "overrides": {}, "smoke": False}
    record["sampling"] = {"generator_device": "cpu", "prompt_dtype": "float32"}
    rundir.write_json(out / "config.json", {**record, "config": _asdict(exp_cfg)})
    return out


def test_a_reproduction_in_use_is_not_resumed_twice(reproduction, capsys):
    from icsim.training import run as runs

    held = runs.lock(reproduction)  # as the running (or resuming) reproduction holds it
    try:
        assert main(["reproduce", "--resume", str(reproduction)]) == 2
    finally:
        held.close()
    one_line_error(capsys, "in use by another icsim process")
    assert not (reproduction / "metrics.json").exists()


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--profile", "full"], "drop --profile"),
        (["--train.steps", "5"], "drop --train.steps"),
        (["--smoke", "--overwrite"], "drop --smoke, --overwrite"),
        (["--out", "elsewhere"], "drop --out"),
    ],
)
def test_resume_refuses_new_settings(reproduction, capsys, flags, needle):
    assert main(["reproduce", GARG, "--resume", str(reproduction), *flags]) == 2
    one_line_error(capsys, needle)
    assert not (reproduction / "metrics.json").exists()


def test_resume_refuses_another_experiment_a_changed_profile_and_another_device(
    reproduction, capsys
):
    assert main(["reproduce", "fu2024", "--resume", str(reproduction)]) == 2
    one_line_error(capsys, f"it is a reproduction of {GARG}")
    saved = json.loads((reproduction / "config.json").read_text())
    saved["config"]["train"]["steps"] += 1  # the profile changed since it was started
    (reproduction / "config.json").write_text(json.dumps(saved))
    assert main(["reproduce", "--resume", str(reproduction)]) == 2
    one_line_error(capsys, "no longer those it was started with", "--overwrite")
    saved["config"]["train"]["steps"] -= 1
    saved["sampling"]["generator_device"] = "cuda"
    (reproduction / "config.json").write_text(json.dumps(saved))
    assert main(["reproduce", "--resume", str(reproduction), "--device", "cpu"]) == 2
    one_line_error(capsys, "started on 'cuda'", "--device cuda")


# Giannou et al.: one trained model per depth, then evaluations. Killed while its second depth
# trains, the first depth is loaded from its final checkpoint and the second continues.
G_STEPS = 120  # a checkpoint every 10 log rows: 20 steps
GIANNOU = """
import sys
from icsim.experiments.base import reproduce, resume
from icsim.experiments.giannou2025 import (
    ConstructionSettings, GiannouConfig, TrainingSettings)
cfg = GiannouConfig(
    eval_prompts=32, gd_steps=20, newton_steps=4,
    construction=ConstructionSettings(widths=(64, 128), steps=5, prompts=8,
        newton_schulz_steps=(1, None), table_steps=2, table_prompts=16),
    training=TrainingSettings(depths=(1, 2), steps=STEPS, batch_size=16, log_every=2))
if sys.argv[1] == "resume":
    resume(sys.argv[2], config=cfg)
else:
    reproduce("giannou2025-newton", "quick", sys.argv[2], config=cfg, quiet=True)
""".replace("STEPS", str(G_STEPS))


def test_a_reproduction_of_several_models_killed_in_its_second_resumes(tmp_path):
    t0 = time.perf_counter()
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    python = [sys.executable, "-c", GIANNOU]
    run = subprocess.run([*python, "new", str(whole)], env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    proc = subprocess.Popen([*python, "new", str(cut)], env=ENV, stderr=subprocess.PIPE, text=True)
    second = cut / "models" / "train-cond1_depth2"
    deadline = time.monotonic() + 240
    while newest_step(second) < 20:  # the first depth is done, the second under way
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the second depth never reached a checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = newest_step(second)
    assert killed_at < G_STEPS and not (cut / "metrics.json").exists()
    first = newest_step(cut / "models" / "train-cond1_depth1")
    assert first == G_STEPS

    run = subprocess.run([*python, "resume", str(cut)], env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # depth 1 is not trained again, depth 2 continues after its checkpoint
    trained = [ln for ln in run.stderr.splitlines() if ": step " in ln]
    assert trained and all("depth 2" in ln for ln in trained), trained
    assert trained[0].split(": step ")[1].startswith(f"{killed_at + 2}/{G_STEPS} ")
    assert numbers(cut) == numbers(whole)
    for log in ("cond1_depth1.jsonl", "cond1_depth2.jsonl"):  # no row written twice
        rows = [json.loads(ln)["step"] for ln in open(cut / "models" / log)]
        assert rows == list(range(2, G_STEPS + 1, 2))
    print(f"giannou: killed at depth 2 step {killed_at}; test in {time.perf_counter() - t0:.0f} s")


def test_resuming_mode_continues_started_runs_only(tmp_path):
    """Which Trainers a `resuming` block continues: started runs under its root; a directory
    killed before its config.json starts afresh; runs elsewhere are left alone."""
    from icsim import rundir
    from icsim.training import Run
    from icsim.training import run as runs

    started, bare = (rundir.prepare(tmp_path / "r" / n) for n in ("a", "b"))
    (started / "config.json").write_text("{}")
    other = rundir.prepare(tmp_path / "elsewhere")
    (other / "config.json").write_text("{}")
    with runs.resuming(tmp_path / "r"):
        assert runs.resumed(Run(dir=started, overwrite=True)).resume
        assert not runs.resumed(Run(dir=started, overwrite=True)).overwrite
        assert runs.resumed(Run(dir=bare)) == Run(dir=bare, overwrite=True)
        assert runs.resumed(Run(dir=tmp_path / "r" / "d")) == Run(dir=tmp_path / "r" / "d")
        assert runs.resumed(Run(dir=other)) == Run(dir=other)
        assert runs.resumed(Run()) == Run()
    assert runs.resumed(Run(dir=started)) == Run(dir=started)
