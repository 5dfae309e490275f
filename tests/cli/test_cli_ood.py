"""`icsim eval RUN --ood` on a tiny trained run; a run of another task is refused (exit 2)."""

import json

from icsim.cli import main
from icsim.tasks.ood import CONDITIONS

TINY = (
    "--dim 3 --n-layer 1 --n-head 1 --n-embd 8 --batch-size 4 --curriculum.no-enabled "
    "--curriculum.dims-start 3 --curriculum.dims-end 3 --curriculum.points-start 7 "
    "--curriculum.points-end 7 --steps 2 --log-every 2 --quiet"
).split()


def test_eval_ood_writes_every_condition(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    assert main(["eval", str(run), "--prompts", "8", "--ood"]) == 0
    out = capsys.readouterr().out
    assert "out of distribution" in out and "half_subspace" in out
    first = json.loads((run / "eval/metrics.json").read_text())["ood"]
    assert set(first) == set(CONDITIONS)
    curves = {"transformer", "least_squares", "averaging", "nearest_neighbours"}
    assert all(set(r["curves"]) == curves for r in first.values())
    assert (run / "eval/ood_scale_x_0.333.png").is_file()
    assert (run / "eval/ood_orthogonal.png").is_file()


def test_eval_ood_on_another_task_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "logistic"
    assert main(["train", "--out", str(run), "--task", "logistic_regression", *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--prompts", "8", "--ood"]) == 2
    err = capsys.readouterr().err
    assert "applies to linear regression" in err and "logistic_regression" in err
    assert len(err.strip().splitlines()) == 1
    assert not (run / "eval").exists()
