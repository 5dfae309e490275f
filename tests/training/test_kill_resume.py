"""SIGKILL `icsim train` at a random moment, resume it, and end with exactly the weights (and
optimizer state) of an uninterrupted run (issue 8). Checkpoints every 5 steps make a kill during
a checkpoint write likely; after the kill every checkpoint on disk must still verify."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from icsim.errors import InputError
from icsim.training import TrainConfig, Trainer, from_dict
from icsim.training import checkpoint as ckpt

STEPS = 200
FLAGS = ["--dim", "3", "--n-layer", "1", "--n-head", "1", "--n-embd", "8", "--steps", str(STEPS),
         "--batch-size", "4", "--log-every", "5", "--checkpoint-every", "5",
         "--keep-checkpoints", "2", "--curriculum.no-enabled", "--curriculum.dims-end", "3",
         "--curriculum.points-end", "5"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(*args):
    cmd = [sys.executable, "-m", "icsim.cli", "train", *args]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def newest_step(run):
    names = [c.name for c in ckpt.list_checkpoints(run)]
    return int(names[-1].removeprefix(ckpt.PREFIX)) if names else -1


def kill_after(proc, run, step, delay):
    """SIGKILL `proc` `delay` seconds after checkpoint `step` appears."""
    deadline = time.monotonic() + 240
    while newest_step(run) < step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never reached the kill step"
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return newest_step(run)


def assert_every_checkpoint_intact(run):
    for c in ckpt.list_checkpoints(run):
        ckpt.load(c)  # raises if a kill left it half-written


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path):
    rng = random.Random(8)  # a random moment, the same one on every run of the test
    run = tmp_path / "run"
    proc = start("--out", str(run), "--quiet", *FLAGS)
    at = kill_after(proc, run, step=rng.randrange(5, 100, 5), delay=rng.uniform(0, 0.1))
    assert 0 < at < STEPS  # really interrupted mid-run
    assert_every_checkpoint_intact(run)

    proc = start("--resume", str(run))  # not --quiet: it says where it resumed
    # meanwhile, the uninterrupted reference in this process, with the config the child saved
    saved = json.loads((run / "config.json").read_text())["train"]
    reference = Trainer(from_dict(TrainConfig, saved), quiet=True)
    reference.train()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert f"resumed {run} from step {at}." in err  # from the newest checkpoint the kill left
    assert json.loads(out.splitlines()[-1])["step"] == STEPS

    weights, state, _ = ckpt.load(run / "checkpoints" / f"step_{STEPS:08d}")
    want = reference.model.state_dict()
    assert weights.keys() == want.keys()
    for name in want:
        assert torch.equal(weights[name], want[name]), name
    want_state, _ = ckpt.optimizer_tensors(reference.optimizer)
    for name in want_state:  # Adam's moments too, so a further resume also matches
        assert torch.equal(state[name], want_state[name]), name
    assert torch.equal(state["rng.generator"], reference.generator.get_state())
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(5, STEPS + 1, 5))  # the log has every step once, in order
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def _short_run(tmp_path):
    from icsim.training import Curriculum

    cfg = TrainConfig(dim=3, n_layer=1, n_head=1, n_embd=8, steps=10, batch_size=4, log_every=5,
                      checkpoint_every=5,
                      curriculum=Curriculum(enabled=False, dims_end=3, points_end=5))  # fmt: skip
    Trainer(cfg, tmp_path / "run", quiet=True).train(stop_after=5)
    return tmp_path / "run"


def test_resume_after_a_kill_that_tore_the_last_log_line(tmp_path):
    run = _short_run(tmp_path)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "lo')  # SIGKILL (or a full disk) in the middle of a log write
    trainer = Trainer.resume(run, quiet=True)
    assert trainer.step == 5
    trainer.train()
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10]


@pytest.mark.parametrize("text", ["[]", '{"model_kind": "transformer"}'])
def test_resume_with_a_config_json_of_the_wrong_shape(tmp_path, text):
    run = _short_run(tmp_path)
    (run / "config.json").write_text(text)
    with pytest.raises(InputError, match="config.json"):
        Trainer.resume(run, quiet=True)
