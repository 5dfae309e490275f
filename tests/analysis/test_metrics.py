"""The metrics of the giannou2025, liu2025 and wu2025 reproductions (`analysis/metrics.py`),
each against an independent float64 NumPy computation."""

import numpy as np
import pytest
import torch

from icsim.analysis.metrics import (
    first_step_at_or_below,
    matched_steps,
    mean_and_interval_by_column,
    nmse_db,
    nmse_db_interval,
    pooled_r2,
    w_error,
)

RNG = np.random.default_rng(0)


def test_w_error_is_the_mean_squared_coordinate_error():
    w, ref = RNG.normal(size=(7, 5)), RNG.normal(size=(7, 5))
    got = w_error(torch.tensor(w, dtype=torch.float32), torch.tensor(ref)).numpy()
    want = ((w.astype(np.float32).astype(np.float64) - ref) ** 2).sum(1) / 5
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert w_error(torch.tensor(w), torch.tensor(w)).abs().max() == 0


def test_nmse_db_is_the_ratio_of_sums_in_decibels():
    err, power = RNG.uniform(0.1, 1, size=(3, 11)), RNG.uniform(0.5, 2, size=11)
    got = nmse_db(torch.tensor(err), torch.tensor(power)).numpy()
    np.testing.assert_allclose(got, 10 * np.log10(err.sum(1) / power.sum()), rtol=1e-12)
    # the zero estimate (error = signal power) is exactly 0 dB, a tenth of it −10 dB
    p = torch.tensor(power)
    assert nmse_db(p, p).item() == 0.0
    assert nmse_db(p / 10, p).item() == pytest.approx(-10.0, abs=1e-12)


def test_nmse_db_interval_resamples_prompts_with_the_same_draw_for_every_row():
    err, power = RNG.uniform(0.1, 1, size=(2, 40)), RNG.uniform(0.5, 2, size=40)
    gen = torch.Generator().manual_seed(5)
    y, low, high = nmse_db_interval(
        torch.tensor(err), torch.tensor(power), n_boot=300, generator=gen
    )
    idx = torch.randint(40, (300, 40), generator=torch.Generator().manual_seed(5)).numpy()
    boots = 10 * np.log10(err[:, idx].sum(-1) / power[idx].sum(-1))  # [2, 300]
    np.testing.assert_allclose(y.numpy(), 10 * np.log10(err.sum(1) / power.sum()), rtol=1e-12)
    np.testing.assert_allclose(low.numpy(), np.quantile(boots, 0.025, axis=1), rtol=1e-12)
    np.testing.assert_allclose(high.numpy(), np.quantile(boots, 0.975, axis=1), rtol=1e-12)
    assert (low <= y).all() and (y <= high).all()


def test_pooled_r2_pools_over_prompts():
    y = RNG.normal(size=200)
    pred = y + 0.3 * RNG.normal(size=200)
    want = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    got = pooled_r2(torch.tensor(pred, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert got == pytest.approx(want, rel=1e-5)
    assert pooled_r2(torch.tensor(y), torch.tensor(y)) == 1.0
    assert pooled_r2(torch.full((200,), y.mean()), torch.tensor(y)) == pytest.approx(0, abs=1e-12)


def test_mean_and_interval_by_column_bootstraps_each_column_in_turn():
    values = RNG.normal(size=(30, 3))
    mean, low, high = mean_and_interval_by_column(
        torch.tensor(values), generator=torch.Generator().manual_seed(1)
    )
    gen = torch.Generator().manual_seed(1)
    for j in range(3):  # one [1000, P] resample per column, drawn in column order
        idx = torch.randint(30, (1000, 30), generator=gen).numpy()
        boots = values[idx, j].mean(1)
        assert low[j].item() == pytest.approx(np.quantile(boots, 0.025), rel=1e-12)
        assert high[j].item() == pytest.approx(np.quantile(boots, 0.975), rel=1e-12)
    np.testing.assert_allclose(mean.numpy(), values.mean(0), rtol=1e-12)


def test_matched_steps_interpolates_on_a_log_scale():
    errors = [1.0, 1e-1, 1e-3]
    assert matched_steps(errors, 2.0) == 0.0
    assert matched_steps(errors, 1e-1) == 1.0
    assert matched_steps(errors, 10**-0.5) == pytest.approx(0.5)
    assert matched_steps(errors, 1e-2) == pytest.approx(1.5)
    assert matched_steps(errors, 1e-4) is None
    # a geometric curve e_t = 0.3^t: the match of e at step s (fractional) is s itself
    geo = [0.3**t for t in range(10)]
    for s in (0.25, 2.5, 7.9):
        assert matched_steps(geo, 0.3**s) == pytest.approx(s, rel=1e-12)
    # an error of exactly 0 is read as 1e-300, so the log interpolation stays finite
    assert matched_steps([1.0, 0.0], 1e-200) == pytest.approx(2 / 3, rel=1e-12)


def test_first_step_at_or_below_counts_more_than_the_curve_when_never_reached():
    curve = [0.0, -1.0, -3.0, -2.0]
    assert first_step_at_or_below(curve, 0.0) == 0
    assert first_step_at_or_below(curve, -2.5) == 2
    assert first_step_at_or_below(curve, -5.0) == len(curve)


def test_bootstrap_band_without_a_generator_is_the_same_run_to_run():
    from icsim.analysis.report import Curve

    values = torch.tensor(RNG.normal(size=(40, 4)))
    a, b = (Curve.of_prompts(values, range(4)) for _ in range(2))
    assert a.y_low == b.y_low and a.y_high == b.y_high
    seeded = Curve.of_prompts(values, range(4), generator=torch.Generator().manual_seed(0))
    assert a.y_low == seeded.y_low  # None means a generator seeded 0
    other = Curve.of_prompts(values, range(4), generator=torch.Generator().manual_seed(5))
    assert a.y_low != other.y_low
