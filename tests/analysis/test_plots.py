"""Figures a person can read, checked through their JSON sidecar (issue 17, item 6)."""

import json
import warnings

from icsim.analysis.plots import plot_curves, plot_panels, plot_training_losses, sidecar


def drawn(path) -> dict:
    return json.loads(sidecar(path).read_text())["panels"][0]


def garg_like(d=5, n=11):
    """Errors against k as in Garg et al.'s figure: least squares exactly 0 past d, the
    transformer just above it, averaging near 1 — a linear axis hides the first two at 0."""
    k = list(range(n))
    ls = [1 - i / d if i < d else 0.0 for i in k]
    tf = [v + 1e-3 for v in ls]
    return {
        "transformer": {"x": k, "y": tf, "y_low": [v * 0.9 for v in tf], "y_high": tf},
        "least_squares": {"x": k, "y": ls},
        "averaging": {"x": k, "y": [1.0 - 0.02 * i for i in k]},
        "nearest_neighbours": {"x": k, "y": [1.2] * n},
    }


def test_errors_spanning_decades_get_a_log_axis_and_every_curve_shows(tmp_path):
    path = tmp_path / "err.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot be log-scaled" or any other warning
        plot_curves(garg_like(), path, vline=5, vline_label="k = d",
                    paper={"paper (d = 20)": ([5, 10], [0.02, 0.0006])})  # fmt: skip
    p = drawn(path)
    assert p["yscale"] == "symlog"  # least squares' exact 0 stays on the figure
    lines = {ln["label"]: ln for ln in p["lines"]}
    curves = ["transformer", "least squares", "averaging", "3-nearest neighbours"]
    assert all(lines[c]["visible"] for c in curves)
    styles = {(lines[c]["color"], lines[c]["linestyle"]) for c in curves}
    assert len(styles) == len(curves)  # no two curves alike
    assert "paper (d = 20)" in p["legend"] and lines["paper (d = 20)"]["y"] == [0.02, 0.0006]
    assert not any("_" in label for label in p["legend"])
    assert p["xlabel"] == "" and p["title"] == ""


def test_values_within_a_decade_stay_linear_and_positive_ones_get_log(tmp_path):
    flat = {"a": {"x": [0, 1, 2], "y": [0.5, 0.6, 0.7]}}
    plot_curves(flat, tmp_path / "flat.png")
    assert drawn(tmp_path / "flat.png")["yscale"] == "linear"
    steep = {"a": {"x": [0, 1, 2], "y": [1.0, 1e-2, 1e-4]}}
    plot_curves(steep, tmp_path / "steep.png")
    assert drawn(tmp_path / "steep.png")["yscale"] == "log"
    negative = {"r2": {"x": [0, 1, 2], "y": [-1.0, 0.5, 0.99]}}
    plot_curves(negative, tmp_path / "r2.png", logy=None)
    assert drawn(tmp_path / "r2.png")["yscale"] == "linear"
    # an R² of −3700 beside ones near 1 (wu2025's shifted inputs): symlog keeps both readable
    outlier = {"tf": {"x": [0, 1], "y": [0.9, 0.8]}, "net": {"x": [0, 1], "y": [-3700.0, -1800.0]}}
    plot_curves(outlier, tmp_path / "shift.png")
    assert drawn(tmp_path / "shift.png")["yscale"] == "symlog"


def test_log_axes_asked_for_on_zeros_give_no_warning(tmp_path):
    """The Fu smoke run's matched steps: every value 0 on a log axis warned "Data has no
    positive values, and therefore cannot be log-scaled"."""
    zeros = {"newton": {"x": [1, 2, 3], "y": [0, 0, 0]}, "gd": {"x": [1, 2, 3], "y": [0, 0, 0]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_curves(zeros, tmp_path / "z.png", logy=True)
        panel = {"lines": [("a", zeros["newton"], {})], "yscale": "log"}
        plot_panels([panel], tmp_path / "p.png")
    assert drawn(tmp_path / "z.png")["yscale"] == "linear"
    assert all(ln["visible"] for ln in drawn(tmp_path / "z.png")["lines"])


def test_a_training_loss_figure_per_trained_model(tmp_path):
    for name, scale in (("train-a", 1.0), ("train-b", 10.0)):
        (tmp_path / name).mkdir()
        rows = [{"step": s, "loss": scale / s} for s in range(1, 400, 20)]
        text = "\n".join(json.dumps(r) for r in rows) + '\n{"step": 9'  # a torn last line
        (tmp_path / name / "metrics.jsonl").write_text(text)
    figures = plot_training_losses(tmp_path)
    assert [f.name for f in figures] == ["training_loss_train-a.png", "training_loss_train-b.png"]
    p = drawn(figures[1])
    assert p["yscale"] == "log" and p["xlabel"] == "training step"
    assert p["lines"][0]["y"][0] == 10.0


def test_a_curve_on_top_of_another_says_so_and_whole_number_axes_get_whole_ticks(tmp_path):
    # he2025's EM construction equals EM exactly: drawn over it, EM would seem missing
    em = {"x": [1, 2, 3, 4, 5, 6], "y": [0.3, 0.5, 0.8, 0.9, 0.94, 0.96]}
    curves = {"lloyd": {"x": em["x"], "y": [0.2, 0.5, 0.7, 0.8, 0.9, 0.95]}, "em": em,
              "em_construction": dict(em)}  # fmt: skip
    plot_curves(curves, tmp_path / "ari.png")
    p = drawn(tmp_path / "ari.png")
    assert p["legend"] == ["lloyd", "em", "em construction (= em)"]
    near = dict(em, y=[em["y"][0] - 1e-3, *em["y"][1:]])  # on it as drawn, not equal
    plot_curves({"em": em, "em_construction": near, "far": dict(em, y=[0.1] * 6)},
                tmp_path / "near.png")  # fmt: skip
    assert drawn(tmp_path / "near.png")["legend"] == ["em", "em construction (≈ em)", "far"]
    lines = {ln["label"]: ln for ln in p["lines"]}
    assert lines["em"]["linestyle"] != lines["em construction (= em)"]["linestyle"]
    assert all(t.is_integer() for t in p["xticks"])  # no "layer 2.5"


def test_log_y_on_a_linear_x_only_where_values_span_a_decade(tmp_path):
    narrow = {"x": [0, 1, 2, 3, 4], "y": [0.92, 0.89, 0.89, 0.89, 0.89]}
    panel = {"lines": [("probe", narrow, {})], "xlabel": "layer", "yscale": "log"}
    plot_panels([panel], tmp_path / "probe.png")
    p = drawn(tmp_path / "probe.png")
    assert p["yscale"] == "linear" and all(t.is_integer() for t in p["xticks"])
    slope = {"lines": [("em", {"x": [10, 20, 40], "y": [0.9, 0.7, 0.5]}, {})],
             "xscale": "log", "yscale": "log"}  # fmt: skip
    plot_panels([slope], tmp_path / "slope.png")
    assert drawn(tmp_path / "slope.png")["yscale"] == "log"  # log–log: the slope is the point


def test_heatmap_ticks_are_indices_and_long_titles_wrap(tmp_path):
    from icsim.analysis.plots import plot_heatmap

    title = "similarity of errors: transformer layers vs gradient_descent_kappa100"
    plot_heatmap([[0.1, 0.2, 0.3]] * 4, tmp_path / "h.png", xlabel="EM iteration",
                 ylabel="layer", title=title)  # fmt: skip
    p = drawn(tmp_path / "h.png")
    assert p["yticks"] == [0.0, 1.0, 2.0, 3.0] and p["xticks"] == [0.0, 1.0, 2.0]
    assert "\n" in p["title"] and p["title"].replace("\n", " ") == title


def test_a_title_longer_than_its_panel_is_wrapped_not_cut(tmp_path):
    title = "iterative_newton_regression construction in float32 vs its algorithm (float64)"
    curves = {"a": {"x": [0, 1, 2], "y": [0.5, 0.6, 0.7]}}
    plot_curves(curves, tmp_path / "t.png", title=title)
    drawn_title = drawn(tmp_path / "t.png")["title"]
    assert "\n" in drawn_title and drawn_title.replace("\n", " ") == title
    plot_curves(curves, tmp_path / "s.png", title="short")
    assert drawn(tmp_path / "s.png")["title"] == "short"
