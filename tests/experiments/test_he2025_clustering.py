"""he2025-em-clustering: scalars read off the curves, findings that flip when the numbers do,
the permutation-matched loss, real-data prompts."""

import pytest
import torch

from icsim.analysis import clustering_metrics as M
from icsim.analysis.report import judge_all
from icsim.experiments.he2025_clustering import HeConfig
from icsim.experiments.he2025_clustering_findings import FINDINGS, summarise
from icsim.models.clustering_formats import PointTokens
from icsim.training.losses import cross_entropy_matched

SEPS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


def curves(tf_mis, tf_ari=0.9, lloyd_ari=0.92, em_ari=0.93, con_ari=0.93):
    c = {
        "misclustering_vs_separation_transformer": {"y": list(tf_mis)},
        "ari_vs_separation_transformer": {"y": [tf_ari] * 6},
        "ari_vs_separation_lloyd": {"y": [lloyd_ari] * 6},
        "ari_vs_separation_em": {"y": [em_ari] * 6},
        "ari_vs_separation_em_construction": {"y": [con_ari] * 6},
        "misclustering_vs_separation_lloyd": {"y": list(tf_mis)},
        "misclustering_vs_separation_em": {"y": list(tf_mis)},
    }
    return c


GOOD_MIS = [0.5, 0.3, 0.1, 0.02, 0.005, 0.001]


def scalars(**change):
    s = summarise(HeConfig(), curves(GOOD_MIS))
    s.update(beyond_ari_transformer=0.8, beyond_ari_lloyd=0.82, beyond_ari_em=0.83)
    s.update(layer_match_monotone=1.0, last_layer_best_similarity=0.9, n_layers=3)
    s.update({f"matched_em_iteration_layer_{i}": m for i, m in enumerate([0, 1, 2, 3])})
    s.update(change)
    return s


def test_scalars_are_read_off_the_curves():
    s = summarise(HeConfig(), curves(GOOD_MIS))
    assert s["high_separation"] == 4.0
    assert s["misclustering_vs_separation_transformer_at_3"] == 0.1
    assert s["ari_gap_transformer_minus_lloyd_high"] == pytest.approx(-0.02)
    assert s["transformer_below_minimax_from_3"] == 1.0  # exp(−9/8) = 0.32 > 0.1
    above = list(GOOD_MIS)
    above[4] = M.minimax_rate(5.0, 1.0) * 1.01  # one point above the rate
    assert summarise(HeConfig(), curves(above))["transformer_below_minimax_from_3"] == 0.0
    assert summarise(HeConfig(), curves(GOOD_MIS, con_ari=0.9))[
        "construction_minus_em_max_ari"
    ] == pytest.approx(0.03)


BREAKS = {
    "minimax_rate": {"transformer_below_minimax_from_3": 0.0},
    "comparable_to_lloyd": {"ari_gap_transformer_minus_lloyd_high": -0.2},
    "beyond_assumptions": {"beyond_ari_transformer": 0.5},
    "layers_follow_em": {"layer_match_monotone": 0.0},
    "construction_is_em": {"construction_minus_em_max_ari": 1e-3},
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_each_finding_holds_on_agreeing_numbers_and_flips_when_they_break(name):
    assert judge_all(FINDINGS, scalars())[name].holds
    broken = judge_all(FINDINGS, scalars(**BREAKS[name]))[name]
    assert not broken.holds and "criterion not met" in broken.sentence
    missing = scalars()
    missing.pop(next(iter(BREAKS[name])))
    assert judge_all(FINDINGS, missing)[name].sentence.startswith("Not measured")


def test_layers_need_a_close_last_layer_too():
    assert not judge_all(FINDINGS, scalars(last_layer_best_similarity=0.5))[
        "layers_follow_em"
    ].holds


def test_matched_cross_entropy_ignores_how_clusters_are_numbered():
    """Logits that separate the clusters under another numbering cost ~0; without the
    matching (targets = the raw labels) the same logits cost ~20."""
    g = torch.Generator().manual_seed(0)
    z = torch.randint(0, 3, (8, 10), generator=g)
    mask = torch.ones(8, 10, dtype=torch.bool)
    mask[:, 8:] = False
    perm = torch.tensor([2, 0, 1])
    logits = 20 * torch.nn.functional.one_hot(perm[z], 3).float()
    from icsim.tasks.base import TaskBatch

    batch = TaskBatch(torch.zeros(8, 10, 2), z.float(), "gmm", {"z": torch.where(mask, z, -1),
                                                                  "mask": mask})  # fmt: skip

    def forward(tokens, mask=None, return_hidden=False):
        return logits

    fmt = PointTokens(2)
    matched = cross_entropy_matched(fmt, lambda lp, b: M.matched_targets(lp, b.z, b.mask))
    raw = cross_entropy_matched(fmt, lambda lp, b: b.z)
    assert matched(forward, batch) < 1e-6
    assert raw(forward, batch) > 10
