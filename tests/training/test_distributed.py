"""Data-parallel training through torchrun (gloo, 2 CPU processes) follows the single-process run
at the same global batch, step for step."""

import json
import os
import subprocess
import sys

import pytest

ARGS = (
    "train --quiet --dim 3 --n-layer 2 --n-head 2 --n-embd 16 --steps 12 --batch-size 16 "
    "--log-every 1 --checkpoint-every 12 --lr 3e-3 --curriculum.no-enabled "
    "--curriculum.dims-start 3 --curriculum.dims-end 3 --curriculum.points-start 7 "
    "--curriculum.points-end 7"
).split()


def losses(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows]


def run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]


def test_two_processes_follow_the_single_process_run(tmp_path):
    pytest.importorskip("torch.distributed")
    run([sys.executable, "-m", "icsim.cli", *ARGS, "--out", str(tmp_path / "one")], tmp_path)
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "icsim.cli",
            *ARGS,
            "--out",
            str(tmp_path / "two"),
        ],
        tmp_path,
    )
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 12
    # the same global batch every step; only the order of the gradient sum differs
    assert two == pytest.approx(one, rel=1e-4)
    assert one[-1] < one[0]  # it trained
    # the two processes each trained on half of every batch (an unsynchronised half-batch run
    # would drift from the single-process losses above)
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2


def test_shards_partition_the_global_batch():
    import torch

    import icsim
    from icsim.training.distributed import shard

    batch = icsim.tasks.get("linear_regression", dim=3).sample(
        8, 5, generator=torch.Generator().manual_seed(0)
    )
    parts = [shard(batch, r, 2) for r in range(2)]
    assert torch.equal(torch.cat([p.xs for p in parts]), batch.xs)
    assert torch.equal(torch.cat([p.ys for p in parts]), batch.ys)
