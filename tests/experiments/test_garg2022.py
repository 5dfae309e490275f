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
