"""What he2025-spectral's report says, as a pure function of the config and the measured
numbers: the paper's entries, the findings (each a claim with the criterion on our scalars that
decides it), the rows of "our numbers beside the paper's", and `report`, which fills
`he2025_spectral.md` with them. `he2025_spectral.py` measures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from icsim import algorithms
from icsim.analysis.report import Comparison, Finding, fill_beside, fmt, judge_all

if TYPE_CHECKING:
    from icsim.experiments.he2025_spectral import HeConfig

PAPER = {  # as reviewers report the paper (PAPERS.md §8, unverified)
    "eigenvalue_relative_error_synthetic": "< 2% at small d",
    "cosine_synthetic": "near 1 at small d, falling with d and k",
    "real_data": "about 10x the synthetic error; cosine <= 0.5 for k > 1 (MNIST)",
    "clustering": "a transformer approximates the spectral algorithm (sign of the Gram matrix's "
    "leading eigenvector) on two-class mixtures",
}

#: how much worse (absolute misclustering, averaged over the separations) than the spectral
#: algorithm a trained transformer may be and still "cluster like it"
CLUSTER_MARGIN = 0.05


def _gap(s, a, b):
    return s[a] - s[b]


def _vs(a: str, b: str, la: str, lb: str):
    return lambda s: f"{la} {fmt(s[a])}, {lb} {fmt(s[b])}"


def _below(name, claim, criterion, ours, than, la, lb, margin=0.0):
    """A claim that scalar `ours` is below scalar `than` (+ `margin`)."""
    return Finding.below(
        name, claim, criterion, ours, than, margin, measured=_vs(ours, than, la, lb),
        needs=(ours, than),
    )  # fmt: skip


FINDINGS = [
    _below("falls_with_d", "accuracy falls as the dimension d grows",
           "ReLU model's mean |cos| at the largest d below that at the smallest",
           "relu_cos_dmax", "relu_cos", "largest d:", "smallest d:"),
    _below("falls_with_k", "accuracy falls for later eigenvectors (larger k)",
           "ReLU model's mean |cos| of the last eigenvector below that of the first",
           "relu_cos_vk", "relu_cos_v1", "last:", "first:"),
    Finding(
        "saturates_with_depth",
        "accuracy saturates with depth",
        "the ReLU model's per-layer |cos| gains less over its second half of layers than its first",
        lambda s: _gap(s, "relu_layer_last_cos", "relu_layer_half_cos")
        < _gap(s, "relu_layer_half_cos", "relu_layer_first_cos"),
        lambda s: f"layer 0 → L/2: +{fmt(_gap(s, 'relu_layer_half_cos', 'relu_layer_first_cos'))}"
        f", L/2 → L: +{fmt(_gap(s, 'relu_layer_last_cos', 'relu_layer_half_cos'))}",
        needs=("relu_layer_first_cos", "relu_layer_half_cos", "relu_layer_last_cos"),
    ),
    _below("relu_beats_softmax", "ReLU attention beats softmax attention",
           "softmax model's mean |cos| below the ReLU model's (same size, data and steps)",
           "softmax_cos", "relu_cos", "softmax", "ReLU"),
    _below("beats_power_method", "the transformer beats the plain power method at equal iterations",
           "power method's mean |cos| with τ = L iterations per vector below the L-layer ReLU "
           "model's (the construction needs 2 layers per iteration: τ = L is generous to it)",
           "power_cos_at_L", "relu_cos", "power method", "transformer"),
    _below("real_data_harder",
           "real data (MNIST there, digits here) is harder than the synthetic prompts",
           "ReLU model's mean |cos| on digits below that on synthetic prompts",
           "digits_cos", "relu_cos", "digits", "synthetic"),
    _below("clusters_like_spectral",
           "a trained transformer clusters two-class mixtures about as well as the spectral "
           "algorithm it can approximate",
           f"the transformer's misclustering, averaged over the separations, below the spectral "
           f"algorithm's + {CLUSTER_MARGIN}",
           "cluster_transformer_misclustering", "cluster_spectral_misclustering",
           "transformer", "spectral algorithm", margin=CLUSTER_MARGIN),
    Finding(
        "construction_exact",
        "the hand-built transformer carries out the power method: its first eigenvector's "
        "directions equal the algorithm's and every norm stays within the stated bound ε_W",
        "vector 1's largest relative error <= 1e-10 (float64) and |‖v‖ − 1| <= ε_W at every W",
        lambda s: s["construction_first_vector_error"] <= 1e-10
        and s["construction_norm_within_bound"] == 1,
        lambda s: f"vector 1 error {fmt(s['construction_first_vector_error'])}, norms within "
        f"bound: {'yes' if s['construction_norm_within_bound'] else 'no'}",
        of_paper=False,
        needs=("construction_first_vector_error", "construction_norm_within_bound"),
    ),
]  # fmt: skip


def headline(cfg: HeConfig, scalars: dict) -> dict:
    """The fixed-name scalars the findings read."""
    d, k, out = cfg.dims[0], cfg.k, {}
    names = {
        "relu_cos": f"relu_d{d}_cos_mean", "relu_cos_dmax": f"relu_d{max(cfg.dims)}_cos_mean",
        "relu_cos_v1": f"relu_d{d}_cos_v1", "relu_cos_vk": f"relu_d{d}_cos_v{k}",
        "softmax_cos": f"softmax_d{d}_cos_mean", "power_cos_at_L": f"power_d{d}_at_L_cos_mean",
        "digits_cos": "digits_relu_cos_mean",
    }  # fmt: skip
    for short, long in names.items():
        if long in scalars and not (short == "relu_cos_dmax" and max(cfg.dims) == d):
            out[short] = scalars[long]
    return out


def report(cfg: HeConfig, scalars: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the numbers."""
    d = cfg.dims[0]
    scalars.update(headline(cfg, scalars))
    comparison = [
        Comparison(f"ReLU transformer eigenvalue rel. error (median, d = {d})",
                   f"relu_d{d}_value_error_median", PAPER["eigenvalue_relative_error_synthetic"]),
        Comparison(f"ReLU transformer mean |cos| (d = {d}, k = {cfg.k})", f"relu_d{d}_cos_mean",
                   PAPER["cosine_synthetic"]),
        Comparison(f"softmax transformer mean |cos| (d = {d})", f"softmax_d{d}_cos_mean", "—"),
        Comparison(f"power method mean |cos| at τ = L (d = {d})", f"power_d{d}_at_L_cos_mean",
                   "—"),
        Comparison("ReLU transformer mean |cos| on digits", "digits_relu_cos_mean",
                   PAPER["real_data"]),
        Comparison("power method mean |cos| on digits at τ = L", "digits_power_at_L_cos_mean",
                   "—"),
        Comparison("transformer misclustering (mean over separations)",
                   "cluster_transformer_misclustering", PAPER["clustering"]),
        Comparison("spectral algorithm misclustering (same prompts)",
                   "cluster_spectral_misclustering", "—"),
        Comparison("Lloyd misclustering (same prompts)", "cluster_lloyd_misclustering", "—"),
    ]  # fmt: skip
    verdicts = judge_all(FINDINGS, scalars)
    t = cfg.train
    ctx = {
        "steps": t.steps, "n_head": t.n_head, "n_embd": t.n_embd, "batch_size": t.batch_size,
        "n_points": cfg.n_points, "gap": cfg.gap, "dims": ", ".join(map(str, cfg.dims)),
        "eval_prompts": cfg.eval_prompts, "lloyd": "lloyd" in algorithms.names(),
        "cluster_points": cfg.cluster_points, "cluster_steps": cfg.cluster_steps,
        "separations": ", ".join(f"{x:g}" for x in cfg.separations),
    }  # fmt: skip
    notes = fill_beside(
        Path(__file__).with_name("he2025_spectral.md"), {**scalars, **ctx}, verdicts
    )
    return comparison, list(verdicts.values()), notes
