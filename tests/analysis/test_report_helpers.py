"""The shared pieces experiments report through: one-line Findings, markdown tables, training
curves, per-column bands, and chunked evaluation over a batch's rows."""

import torch

from icsim.analysis.evaluation import in_chunks
from icsim.analysis.metrics import mean_and_interval_by_column
from icsim.analysis.report import Curve, Finding, markdown_table
from icsim.tasks.base import TaskBatch


def test_below_holds_only_under_the_margin_and_says_both_numbers():
    f = Finding.below(
        "b", "ours wins", "ours < theirs + 1", "ours", "theirs", margin=1.0, unit="dB"
    )
    assert f.judge({"ours": 1.9, "theirs": 1.0}).holds
    no = f.judge({"ours": 2.0, "theirs": 1.0})
    assert not no.holds and "2.0 dB against 1.0 dB" in no.sentence


def test_flag_holds_only_at_one():
    f = Finding.flag("f", "it holds", "flag = 1", "ok")
    assert f.judge({"ok": 1.0}).holds and not f.judge({"ok": 0.0}).holds


def test_markdown_table():
    assert markdown_table(["a", "b"], [(1, "x"), (2, "y")]) == (
        "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |"
    )


def test_training_curve_skips_rows_without_a_float_loss_and_scales():
    rows = [{"step": 0, "loss": 2.0}, {"step": 5, "event": "checkpoint"}, {"step": 9, "loss": 1.0}]
    c = Curve.of_training(rows, "MSE", scale=0.5)
    assert (c.x, c.y, c.x_label) == ([0, 9], [1.0, 0.5], "training step")


def test_per_column_band_is_the_column_bootstrap():
    v = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = Curve.of_prompts(v, range(3), generator=torch.Generator().manual_seed(1), per_column=True)
    mean, low, high = mean_and_interval_by_column(v, generator=torch.Generator().manual_seed(1))
    assert c.y == mean.tolist() and c.y_low == low.tolist() and c.y_high == high.tolist()


def test_rows_and_in_chunks_cover_every_prompt_once():
    g = torch.Generator().manual_seed(0)
    xs, ys, w = torch.randn(7, 4, 2, generator=g), torch.randn(7, 4, generator=g), torch.randn(7, 2)
    batch = TaskBatch(xs=xs, ys=ys, task="t", truth={"w_star": w, "shared": torch.eye(3)})
    part = batch.rows(2, 5)
    assert torch.equal(part.xs, xs[2:5]) and torch.equal(part.w_star, w[2:5])
    assert torch.equal(part.shared, torch.eye(3))  # not per prompt: kept whole
    got = in_chunks(lambda b: b.ys.sum(-1, keepdim=True).T, batch, chunk=3, dim=1)
    assert torch.equal(got, ys.sum(-1, keepdim=True).T)


def test_match_layers_on_queries_matches_the_split_trajectory():
    import icsim
    from icsim.analysis.matching import match_layers, similarity_matrix

    g = torch.Generator().manual_seed(3)
    batch = icsim.tasks.get("linear_regression", dim=3).sample(16, 10, generator=g)
    steps = [0, 1, 4]
    gd = icsim.algorithms.get("gradient_descent", step_size=0.1)
    traj = gd.run(batch.split(6), max(steps)).predictions[steps]  # [S, B, 4]
    layers = traj[[2, 0]] + 0.01 * torch.randn(2, 16, 4, generator=g)
    spec = {"gd": {"algorithm": "gradient_descent", "params": {"step_size": 0.1}, "steps": steps}}
    m = match_layers(layers, batch, spec, n_context=6)["gd"]
    assert torch.equal(
        m["similarity"], similarity_matrix(layers, traj, batch.ys[:, 6:], "error_cosine")
    )
    assert m["matched_step"] == [4, 0]
