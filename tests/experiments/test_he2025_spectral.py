"""he2025-spectral: the findings follow the numbers, the digits prompts, the pieces of the run."""

from dataclasses import replace

import torch

import icsim.tasks
from icsim.experiments.he2025_spectral import (
    PROFILES,
    clustering,
    digits_batch,
    headline,
    power_curve,
    report,
)
from icsim.tasks.pca import planted_eigenvalues, top_eigenpairs

CFG = PROFILES["quick"]


def scalars(**changes):
    s = {
        "relu_d5_cos_mean": 0.9, "relu_d10_cos_mean": 0.7, "relu_d5_cos_v1": 0.95,
        "relu_d5_cos_v2": 0.85, "softmax_d5_cos_mean": 0.8, "power_d5_at_L_cos_mean": 0.6,
        "digits_relu_cos_mean": 0.5, "relu_layer_first_cos": 0.3, "relu_layer_half_cos": 0.8,
        "relu_layer_last_cos": 0.9, "relu_d5_value_error_median": 0.05, "dim": 5, "k": 2,
        "n_layer": 4, "construction_first_vector_error": 1e-15,
        "construction_norm_within_bound": 1.0, "cluster_transformer_misclustering": 0.14,
        "cluster_spectral_misclustering": 0.12,
    }  # fmt: skip
    return {**s, **changes}


def verdicts(s):
    _, v, notes = report(CFG, s)
    assert "distribution shift" in notes
    return {x.finding: x.holds for x in v}


def test_findings_hold_for_the_papers_pattern_and_flip_when_broken():
    assert all(verdicts(scalars()).values())
    flipped = verdicts(
        scalars(relu_d10_cos_mean=0.95, relu_d5_cos_v2=0.99, softmax_d5_cos_mean=0.95,
                power_d5_at_L_cos_mean=0.99, digits_relu_cos_mean=0.99, relu_layer_last_cos=1.5,
                construction_first_vector_error=1e-3, cluster_transformer_misclustering=0.2)
    )  # fmt: skip
    assert not any(flipped.values()), flipped


def test_missing_numbers_are_not_measured():
    s = scalars()
    del s["softmax_d5_cos_mean"]
    v = verdicts(s)
    assert v["relu_beats_softmax"] is False
    assert "softmax_cos" not in headline(CFG, s)


def test_digits_prompts_and_power_curve():
    cfg = replace(CFG, power_iterations=3)
    b = digits_batch(cfg, 5, 16, "cpu")
    assert b.xs.shape == (16, CFG.n_points, 5)
    trace = (b.xs.double().square().sum((1, 2)) / CFG.n_points).float()
    expected = float(planted_eigenvalues(5, 2, CFG.gap, "cpu").sum())  # 3 + 2 + 1 + 2/3 + 1/3
    torch.testing.assert_close(trace, torch.full((16,), expected))
    lam, vec = top_eigenpairs(b.xs.double().transpose(1, 2) @ b.xs.double() / CFG.n_points, 2)
    torch.testing.assert_close(b.eigenvalues, lam.float())
    curve = power_curve(b, cfg)
    assert curve.shape == (4, 16, 2)
    assert curve[-1].mean() > curve[0].mean()


def test_clustering_curve_falls_with_separation():
    cfg = replace(CFG, eval_prompts=64, separations=(0.5, 6.0))
    curves = clustering(cfg, "cpu")
    c = curves["misclustering_spectral_clustering"]
    assert c["y"][1] < 0.05 < c["y"][0]
    lloyd = curves["misclustering_lloyd"]["y"]  # two centres, run for its steps
    assert lloyd[1] < 0.05 < lloyd[0]


def test_clustering_transformer_curve_beside_the_algorithms():
    """A model's two logits per point go through the metric the algorithms' labels do: here a
    fake model labelling by the sign of ⟨x_i, μ⟩ with each prompt's true μ (the oracle)."""
    from icsim.experiments.he2025_spectral import cluster_scalars

    cfg = replace(CFG, eval_prompts=32, separations=(0.5, 6.0))
    g = torch.Generator().manual_seed(CFG.seed + 13)  # `clustering` draws the same prompts
    mus = iter(
        icsim.tasks.get("spectral_clustering", dim=cfg.dims[0], separation=sep)
        .sample(cfg.eval_prompts, cfg.cluster_points, generator=g)
        .truth["mu"]
        for sep in cfg.separations
    )

    class Oracle(torch.nn.Module):
        def forward(self, x, mask=None, return_hidden=False):
            s = (x * next(mus)[:, None]).sum(-1)
            return torch.stack([-s, s], -1)

    curves = clustering(cfg, "cpu", Oracle())
    t = curves["misclustering_vs_separation_transformer"]["y"]
    s = curves["misclustering_spectral_clustering"]["y"]
    assert t[1] <= s[1] + 1e-9 and t[0] < 0.45  # the oracle is at least as good
    assert cluster_scalars(curves)["cluster_transformer_misclustering"] == sum(t) / 2
