import json
import subprocess
import sys

import pytest

from icsim.cli import main

# a 1-layer width-8 model on d = 3 with 7 points: each CLI training test takes a second
TINY = (
    "--dim 3 --n-layer 1 --n-head 1 --n-embd 8 --batch-size 4 --curriculum.no-enabled "
    "--curriculum.dims-start 3 --curriculum.dims-end 3 "
    "--curriculum.points-start 7 --curriculum.points-end 7"
).split()


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "icsim.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for section in ("tasks:", "algorithms:", "models:", "experiments:", "constructions:"):
        assert section in out
    assert "garg2022-linear-regression" in out and "iterative_newton" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["reproduce", "garg2022-linear-regresion"], "did you mean"),
        (["eval", "/nonexistent/run"], "no intact checkpoint"),
        (["train", "--resume", "/nonexistent/run"], "config.json"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle):
    r = run(*argv)
    assert r.returncode == 2, r.stderr
    assert needle.lower() in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_train_then_eval(tmp_path):
    out = tmp_path / "run"
    r = run("train", "--out", str(out), "--quiet", *TINY, "--steps", "5", "--log-every", "5")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["step"] == 5
    r = run("eval", str(out), "--prompts", "16")
    assert r.returncode == 0, r.stderr
    curves = json.loads((out / "eval/metrics.json").read_text())["curves"]
    assert {"transformer", "least_squares", "averaging"} <= set(curves)
    # a second train into the same directory is refused, and nothing is lost
    r = run("train", "--out", str(out), "--quiet", "--steps", "5")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (out / "eval/metrics.json").exists()


def test_bad_train_flag_value_exits_2(tmp_path):
    r = run("train", "--out", str(tmp_path / "x"), "--dim", "-3")
    assert r.returncode == 2
    assert "dim" in r.stderr
    assert not (tmp_path / "x").exists()


def test_divergence_is_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    import torch

    from icsim.training import Trainer

    def nan_step(self):
        self.step += 1
        return torch.tensor(float("nan"))

    monkeypatch.setattr(Trainer, "train_step", nan_step)
    argv = ["train", "--out", str(tmp_path / "r"), "--quiet", *TINY, "--steps", "20"]
    argv += ["--log-every", "5"]
    assert main(argv[:3] + ["--overwrite"] + argv[3:]) == 1
    err = capsys.readouterr().err
    assert err.startswith("icsim: training diverged at step 5") and err.count("\n") == 1
    last = json.loads((tmp_path / "r/metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 5 and last["diverged"]  # the step is recorded


def test_construct_verify_prints_the_table_and_exits_on_the_verdict(capsys):
    assert main(["construct", "ista", "--verify", "--steps", "2", "--dim", "4"]) == 0
    out = capsys.readouterr().out
    assert "reference:  ista(" in out and "PASS" in out
    # a tolerance no float32 run meets: the same table, FAIL and exit 1
    argv = ["construct", "gd", "--verify", "--dtype", "float32", "--params", '{"tolerance": 1e-12}']
    assert main(argv) == 1
    assert "FAIL" in capsys.readouterr().out


def test_construct_deep_gd_verify_reports_the_theorem_bound(capsys):
    """deep_gd goes through the one verification path; its criterion names Theorem 1's bound and
    --dtype is honoured (it was ignored)."""
    params = '{"heads": 33, "width": 2, "depth": 2}'
    argv = ["construct", "deep_gd", "--verify", "--steps", "2", "--problems", "3"]
    assert main([*argv, "--params", params]) == 0
    out = capsys.readouterr().out
    assert "Theorem 1's ηε" in out and ": PASS" in out
    assert main([*argv, "--dtype", "float32", "--params", params]) == 0
    assert "(float32)" in capsys.readouterr().out


def test_train_seeds_trains_them_together_into_one_run_dir_each(tmp_path, capsys):
    """`icsim train --seeds 3`: a transformer's seeds train in one vectorised process; each seed
    directory loads like a single run and holds that seed's own model."""
    from icsim.training import load_trained

    flags = [*TINY, "--steps", "4", "--log-every", "2", "--checkpoint-every", "4", "--seed", "5"]
    argv = ["train", "--out", str(tmp_path / "r"), "--seeds", "3", "--quiet", *flags]
    assert main(argv) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["run_dir"] for x in lines] == [str(tmp_path / "r" / f"seed_{s}") for s in (5, 6, 7)]
    assert all(x["step"] == 4 for x in lines)
    cfgs = [json.loads((tmp_path / "r" / f"seed_{s}" / "config.json").read_text()) for s in (5, 6)]
    assert cfgs[0]["multi_seed"]["seeds"] == [5, 6, 7] and cfgs[1]["seed"] == 6
    w5, w6 = (load_trained(tmp_path / "r" / f"seed_{s}")[0] for s in (5, 6))
    assert not all(
        (a == b).all() for a, b in zip(w5.state_dict().values(), w6.state_dict().values())
    )
