"""A newcomer's first hour with `icsim` (issue 17): each item's CLI behaviour."""

import json

from icsim.cli import main

SMALL = "--n-layer 1 --n-head 1 --n-embd 8 --batch-size 4 --steps 2 --log-every 1".split()


def test_train_dim_5_runs_with_the_curriculum_following_dim(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["train", "--dim", "5", "--out", str(out), "--quiet", *SMALL]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["dim"] == 5 and train["curriculum"]["dims_end"] is None
    assert json.loads((out / "config.json").read_text())["model_config"]["max_positions"] == 22
