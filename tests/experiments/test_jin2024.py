"""jin2024-mixture-regression: the sign-invariant loss, the context helper, config checks, the
findings' verdicts (each flips when its numbers do) and one tiny end-to-end run."""

import json
from dataclasses import replace

import pytest
import torch

import icsim
from icsim.errors import InputError
from icsim.experiments import jin2024 as J
from icsim.experiments import jin2024_findings as F
from icsim.experiments.base import reproduce
from icsim.models.formats import Stacked

GOOD = {
    "transformer_error_nmax_high_snr": 0.2, "em_error_nmax_high_snr": 0.15,
    "slope_transformer_high_snr": -0.48, "slope_em_high_snr": -0.5, "slope_oracle_high_snr": -0.5,
    "slope_em_low_snr": -0.3, "slope_transformer_low_snr": -0.3,
    "transformer_seed_spread_high_snr": 0.01, "em_init_spread_high_snr": 0.1,
    "per_prompt_excess_over_posterior_last": 0.01, "per_prompt_posterior_mean_last": 0.2,
    "per_prompt_least_squares_last": 0.5,
}  # fmt: skip
# one change per finding that must turn its verdict from "agrees" to "does not"
BREAK = {
    "transformer_near_em": {"transformer_error_nmax_high_snr": 0.31},
    "high_snr_rate": {"slope_transformer_high_snr": -0.2},
    "low_snr_slower": {"slope_em_low_snr": -0.45},
    "less_init_sensitive": {"transformer_seed_spread_high_snr": 0.2},
    "per_prompt_bayes": {"per_prompt_excess_over_posterior_last": 0.08},
}


def test_every_finding_holds_on_good_numbers_and_flips_on_bad_ones():
    assert set(BREAK) == {f.name for f in F.FINDINGS}
    verdicts = icsim.analysis.report.judge_all(F.FINDINGS, GOOD)
    assert all(v.holds for v in verdicts.values()), [v.sentence for v in verdicts.values()]
    for name, change in BREAK.items():
        v = icsim.analysis.report.judge_all(F.FINDINGS, {**GOOD, **change})[name]
        assert not v.holds and v.sentence.startswith("Unlike the paper"), v.sentence
    one_seed = {**GOOD, "transformer_seed_spread_high_snr": float("nan")}  # a single seed
    v = icsim.analysis.report.judge_all(F.FINDINGS, one_seed)["less_init_sensitive"]
    assert v.sentence.startswith("Not measured")
    # an untrained model (β̂ ≈ 0) has no spread: it must not count as "insensitive"
    flat = {**GOOD, "transformer_error_nmax_high_snr": 0.95, "em_error_nmax_high_snr": 0.5}
    assert not icsim.analysis.report.judge_all(F.FINDINGS, flat)["less_init_sensitive"].holds
    missing = icsim.analysis.report.judge_all(F.FINDINGS, {})
    assert all(v.sentence.startswith("Not measured") for v in missing.values())


def test_sign_invariant_loss_and_with_context():
    fmt = Stacked(dim=3)
    task = icsim.tasks.get("mixture_linear_regression", dim=3)
    b = task.sample(5, 7, generator=torch.Generator().manual_seed(0))

    def forward_returning(beta):
        return lambda tokens, mask=None, **kw: beta[:, None, :].expand(-1, tokens.shape[1], -1)

    loss = J.sign_invariant_beta_loss(fmt)
    assert loss(forward_returning(b.w_star), b).item() == 0
    assert loss(forward_returning(-b.w_star), b).item() == 0
    assert loss(forward_returning(torch.zeros_like(b.w_star)), b).item() > 0
    c = J.with_context(b, 3)
    assert c.n_points == 4 and torch.equal(c.xs[:, :3], b.xs[:, :3])
    assert torch.equal(c.xs[:, 3], b.xs[:, 6]) and torch.equal(c.labels[:, 3], b.labels[:, 6])


@pytest.mark.parametrize(
    "change",
    [{"dim": 5, "n_values": (4, 8)}, {"n_values": (20,)}, {"snrs": (1.0,)}, {"snrs": (-1.0, 2.0)}],
)
def test_bad_config_is_input_error(change):
    with pytest.raises(InputError):
        replace(J.PROFILES["quick"], **change)


def test_tiny_run_writes_every_curve_scalar_and_the_report(tmp_path):
    ts = J.TrainSettings(n_layer=1, n_head=1, steps=2, batch_size=4, log_every=1, seeds=(0, 1))
    cfg = J.JinConfig(
        train=ts, dim=2, n_values=(4, 6), widths=(4, 8), em_steps=2, init_seeds=2,
        probe_prompts=8, eval_prompts=8,
        per_prompt=J.PerPromptConfig(replace(ts, seeds=(0,)), n_components=3, n_points=5, n_embd=8),
    )  # fmt: skip
    out = reproduce("jin2024-mixture-regression", out=tmp_path / "r", config=cfg, quiet=True)
    m = json.loads((out / "metrics.json").read_text())
    for regime in F.REGIMES:
        for method in ("transformer", "em", "oracle", "gradient_em", "least_squares"):
            assert len(m["curves"][f"error_vs_n_{method}_{regime}"]["y"]) == 2
            assert f"slope_{method}_{regime}" in m["scalars"]
    assert m["paper"]["slope_low_snr"] == -0.25 and m["paper"]["slope_high_snr"] == -0.5
    report = (out / "report.md").read_text()
    assert "Bayes prediction of a new y given x and\nthe context is **0**" in report
    assert (out / "init_sensitivity.png").exists() and (out / "per_prompt.png").exists()
    assert report.count("criterion") >= len(F.FINDINGS)
    assert "transformer_w4_error_n6_high_snr" in m["scalars"]
    assert m["scalars"]["transformer_seed_spread_low_snr"] >= 0  # two seeds: measured
