"""SIGTERM / SIGINT (what Slurm, Kubernetes and Ray send before a kill) finish the step in
flight, write a checkpoint, say so in one line and exit 143 / 130; resuming then ends
bit-identical to an uninterrupted run (issue 15, item 4)."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from icsim.training import Curriculum, TrainConfig, Trainer, from_dict
from icsim.training import checkpoint as ckpt

CFG = TrainConfig(
    dim=3, n_layer=1, n_head=1, n_embd=8, steps=200, batch_size=4, lr=1e-3, log_every=1,
    checkpoint_every=1000, warmup_steps=10, schedule="cosine",
    curriculum=Curriculum(dims_start=2, dims_end=3, points_start=4, points_end=6, interval=80),
)  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from icsim.training import TrainConfig, Trainer, from_dict
    cfg = from_dict(TrainConfig, json.loads(sys.argv[1]))
    Trainer(cfg, sys.argv[2], quiet=True).train()
    """
)


def logged_steps(run: Path) -> int:
    try:
        return len((run / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_checkpoints_exits_and_resumes_bit_identically(tmp_path, sig, code):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(CFG.to_dict()), str(run)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    at = random.Random().randint(3, 100)  # a random step
    deadline = time.time() + 180
    while logged_steps(run) < at and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    assert err.count("\n") == 1 and signal.Signals(sig).name in err and "--resume" in err

    saved = ckpt.list_checkpoints(run)
    assert len(saved) == 1  # checkpoint_every=1000: only the one the signal asked for
    stopped = int(saved[0].name.removeprefix(ckpt.PREFIX))
    assert at <= stopped < CFG.steps
    assert logged_steps(run) == stopped  # every finished step logged, nothing past it

    resumed = Trainer.resume(run, quiet=True)
    assert resumed.step == stopped
    resumed.train()
    reference = Trainer(from_dict(TrainConfig, CFG.to_dict()), tmp_path / "ref", quiet=True)
    reference.train()
    for name in ("model.safetensors", "state.safetensors"):
        got = load_file(run / "checkpoints" / f"step_{CFG.steps:08d}" / name)
        want = load_file(tmp_path / "ref" / "checkpoints" / f"step_{CFG.steps:08d}" / name)
        assert got.keys() == want.keys()
        for k in want:
            assert torch.equal(got[k], want[k]), (name, k)
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(ln) for ln in (tmp_path / "ref/metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref]
