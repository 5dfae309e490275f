"""Report sentences and comparison rows follow the numbers (issue 17, item 6): Garg's report
says whether least squares peaks at k = d from its measured errors, and a row comparing our
d = 5 number with the paper's d = 20 one says so."""

from icsim.experiments import garg2022


def scalars(before, at, after, d=5):
    return {
        "dim": d, "n_points": 2 * d + 1, "k_2d": 2 * d, "least_squares_error_at_k_eq_2d": 0.0,
        "least_squares_error_at_k_eq_d_minus_1": before, "least_squares_error_at_k_eq_d": at,
        "least_squares_error_at_k_eq_d_plus_1": after, "transformer_error_at_k_eq_d": 0.1,
        "transformer_error_at_k_eq_2d": 0.01, "transformer_below_averaging_and_knn_for_k_ge_d": 1,
    }  # fmt: skip


def notes(s):
    return garg2022.report(garg2022.PROFILES["quick"], s, {})[2]


def test_the_least_squares_sentence_follows_its_numbers():
    falls = notes(scalars(0.2, 1e-7, 1e-13))
    assert "falls to exact recovery once k ≥ d" in falls and "peaks" not in falls
    assert "1e-07 at k = d" in falls
    peaks = notes(scalars(0.2, 3.0, 0.1))  # noisy data: the double-descent bump
    assert "peaks at k = d" in peaks and "falls" not in peaks
    missing = notes({k: v for k, v in scalars(0.2, 3.0, 0.1).items() if "plus_1" not in k})
    assert "was not measured" in missing


def test_rows_at_another_d_than_the_paper_carry_a_caveat():
    rows = garg2022.report(garg2022.PROFILES["quick"], scalars(0.2, 0.0, 0.0), {})[0]
    assert "the paper's value is at d = 20, ours at d = 5" in rows[0].note
    rows = garg2022.report(garg2022.PROFILES["full"], scalars(0.2, 0.0, 0.0, d=20), {})[0]
    assert rows[0].note == ""
