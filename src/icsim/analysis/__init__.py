"""Analysis: metrics, error curves, per-layer read-outs, algorithm matching, plots."""

from icsim.analysis.atlas import Atlas, atlas
from icsim.analysis.evaluation import (
    algorithm_prefix_predictions,
    baseline_predictions,
    error_curve,
    evaluate_against_baselines,
    model_prefix_predictions,
    prefix_problem,
)
from icsim.analysis.metrics import (
    cosine_similarity,
    mean_and_interval,
    normalised_squared_error,
    r2_score,
)

__all__ = [
    "Atlas",
    "atlas",
    "algorithm_prefix_predictions",
    "baseline_predictions",
    "error_curve",
    "evaluate_against_baselines",
    "model_prefix_predictions",
    "prefix_problem",
    "cosine_similarity",
    "mean_and_interval",
    "normalised_squared_error",
    "r2_score",
]
