"""Progress lines without a terminal (issue 17, item 4)."""

import io

from icsim import progress


def rows(steps, rate=10.0):
    return [{"step": s, "loss": 1.0 / s, "steps_per_s": rate} for s in steps]


def test_lines_say_step_loss_rate_and_eta_when_not_a_terminal():
    out = io.StringIO()
    lines = progress.Lines(100, "run", every_s=0, stream=out)
    for r in rows([10, 10, 50]):  # a second seed's row of step 10 is not repeated
        lines(r)
    text = out.getvalue().splitlines()
    assert text == [
        "icsim: run: step 10/100 (10%) loss 0.1, 10 steps/s, ETA 9 s",
        "icsim: run: step 50/100 (50%) loss 0.02, 10 steps/s, ETA 5 s",
    ]


def test_lines_are_throttled_to_one_per_interval_but_the_last_is_always_shown():
    out = io.StringIO()
    lines = progress.Lines(100, every_s=3600, stream=out)
    for r in rows(range(10, 101, 10)):
        lines(r)
    shown = [ln.split(" step ")[1].split("/")[0] for ln in out.getvalue().splitlines()]
    assert shown == ["10", "100"]


def test_stages_are_announced_inside_a_reproduction_only():
    out = io.StringIO()
    progress.stage("outside")  # no reproduction: nothing
    with progress.reproduction("exp", stream=out):
        progress.Lines(5, "train-a", stream=out)
        progress.stage("figures")
    with progress.reproduction("quiet-exp", quiet=True, stream=out):
        progress.stage("hidden")
    text = out.getvalue()
    assert "icsim: exp: started" in text
    assert "icsim: exp: training model 1: train-a (5 steps)" in text
    assert "icsim: exp: figures" in text and "icsim: exp: done in" in text
    assert "outside" not in text and "hidden" not in text
