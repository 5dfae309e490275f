import pytest

from icsim.experiments.garg2022 import summarise


def curves(tf, ls, avg, knn):
    return {
        "transformer": {"y": tf},
        "least_squares": {"y": ls},
        "averaging": {"y": avg},
        "nearest_neighbours": {"y": knn},
    }


def test_scalars_are_read_at_k_eq_d_and_2d():
    d, n = 2, 6
    tf = [1.0, 0.8, 0.5, 0.3, 0.2, 0.1]
    c = curves(tf, [1.0, 0.9, 2.0, 0.0, 0.0, 0.0], [1.0] * 6, [1.5] * 6)
    s = summarise(c, d, n)
    assert s["transformer_error_at_k_eq_d"] == 0.5
    assert s["transformer_error_at_k_eq_2d"] == 0.2  # k = 2d = 4
    assert s["least_squares_error_at_k_eq_d"] == 2.0
    assert s["transformer_below_averaging_and_knn_for_k_ge_d"] == 1.0
    assert summarise(c, d, 4)["k_2d"] == 3  # 2d beyond the prompt: its last point


@pytest.mark.parametrize("k", [2, 5])
def test_one_k_above_a_baseline_is_not_beating_it(k):
    tf = [1.0, 0.8, 0.5, 0.3, 0.2, 0.1]
    knn = [1.5] * 6
    knn[k] = tf[k] - 0.01
    s = summarise(curves(tf, [0.0] * 6, [1.0] * 6, knn), 2, 6)
    assert s["transformer_below_averaging_and_knn_for_k_ge_d"] == 0.0


def test_a_tiny_reproduction_writes_its_judged_report(tmp_path):
    import json

    from icsim.experiments import reproduce
    from icsim.experiments.garg2022 import BASELINES, GargConfig
    from icsim.training import Curriculum, TrainConfig

    fixed = Curriculum(enabled=False, dims_start=3, dims_end=3, points_start=7, points_end=7)
    train = TrainConfig(
        dim=3, n_layer=2, n_head=2, n_embd=16, steps=60, batch_size=32, lr=3e-3, log_every=30,
        checkpoint_every=60, curriculum=fixed,
    )  # fmt: skip
    cfg = GargConfig(train=train, eval_prompts=64, baselines=BASELINES)
    out = reproduce("garg2022-linear-regression", config=cfg, out=tmp_path / "r", quiet=True)
    report = (out / "report.md").read_text()
    s = json.loads((out / "metrics.json").read_text())["scalars"]
    assert s["k_2d"] == 6 and "transformer_error_at_k_eq_2d" in s
    assert report.count("- ✅") + report.count("- ❌") == 3  # one line per finding
    config = json.loads((out / "config.json").read_text())
    assert config["sampling"] == {"generator_device": "cpu", "prompt_dtype": "float32"}
