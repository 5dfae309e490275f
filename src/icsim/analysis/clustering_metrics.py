"""Clustering metrics, batched over prompts and defined once: ARI, NMI, misclustering rate up to
the best label permutation, cross-entropy of soft labels, the minimax rate.

Labels are integer tensors [B, n]; a `mask` [B, n] (True = a real point; the `gmm_clustering`
task's `mask`) or a label −1 leaves a point out. ARI and NMI follow scikit-learn's
`adjusted_rand_score` and `normalized_mutual_info_score` (arithmetic mean) to rounding,
including their special cases, from one contingency table per prompt (tests compare them).
"""

from __future__ import annotations

import itertools
import math

import torch

#: label counts up to which the best permutation is found by enumerating all K! of them at once
ENUMERATE_UP_TO = 6
#: the largest K the best permutation is computed for (Hungarian matching beyond ENUMERATE_UP_TO)
MAX_CLUSTERS = 10


def _valid(labels_true, labels_pred, mask):
    valid = (labels_true >= 0) & (labels_pred >= 0)
    return valid if mask is None else valid & mask.bool()


def contingency(labels_true, labels_pred, mask=None, n_true=None, n_pred=None) -> torch.Tensor:
    """[B, K_true, K_pred] float64 counts n_kj of points with true label k and predicted j."""
    valid = _valid(labels_true, labels_pred, mask)
    Kt = int(labels_true.max()) + 1 if n_true is None else n_true
    Kp = int(labels_pred.max()) + 1 if n_pred is None else n_pred
    Kt, Kp = max(Kt, 1), max(Kp, 1)
    flat = labels_true.clamp(min=0).long() * Kp + labels_pred.clamp(min=0).long()
    counts = torch.zeros(labels_true.shape[0], Kt * Kp, dtype=torch.float64, device=flat.device)
    counts.scatter_add_(1, flat, valid.to(torch.float64))
    return counts.view(-1, Kt, Kp)


def adjusted_rand_index(labels_true, labels_pred, mask=None) -> torch.Tensor:
    """[B] adjusted Rand index (Hubert & Arabie 1985) through the pair confusion matrix, as
    scikit-learn's `adjusted_rand_score` (1.0 when the two partitions have no disagreeing
    pair, e.g. both a single cluster)."""
    C = contingency(labels_true, labels_pred, mask)
    n = C.sum((1, 2))
    sum_sq = C.square().sum((1, 2))
    a2, b2 = C.sum(2).square().sum(1), C.sum(1).square().sum(1)
    tp = sum_sq - n
    fp, fn = b2 - sum_sq, a2 - sum_sq
    tn = n**2 - fp - fn - sum_sq
    den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    ari = 2 * (tp * tn - fn * fp) / torch.where(den == 0, 1.0, den)
    return torch.where((fn == 0) & (fp == 0), 1.0, ari)


def _entropy(counts: torch.Tensor) -> torch.Tensor:
    n = counts.sum(-1, keepdim=True)
    p = counts / n.clamp(min=1)
    return -(p * torch.where(p > 0, p, 1.0).log()).sum(-1)


def normalized_mutual_info(labels_true, labels_pred, mask=None) -> torch.Tensor:
    """[B] mutual information / arithmetic mean of the two entropies (natural log), as
    scikit-learn's `normalized_mutual_info_score` (1.0 when both are one cluster, 0.0 when the
    mutual information is 0)."""
    C = contingency(labels_true, labels_pred, mask)
    n = C.sum((1, 2))[:, None, None].clamp(min=1)
    a, b = C.sum(2, keepdim=True), C.sum(1, keepdim=True)
    ratio = torch.where(C > 0, C * n / (a * b).clamp(min=1e-300), 1.0)
    mi = ((C / n) * ratio.log()).sum((1, 2)).clamp(min=0)
    h_true, h_pred = _entropy(C.sum(2)), _entropy(C.sum(1))
    one_each = ((C.sum(2) > 0).sum(1) == 1) & ((C.sum(1) > 0).sum(1) == 1)
    nmi = mi / ((h_true + h_pred) / 2).clamp(min=torch.finfo(torch.float64).eps)
    return torch.where(one_each, 1.0, torch.where(mi == 0, 0.0, nmi))


def best_assignment(score: torch.Tensor) -> torch.Tensor:
    """perm [B, K] maximising Σ_k score[b, k, perm[b, k]] over permutations, for score
    [B, K, K]: all K! permutations at once for K <= ENUMERATE_UP_TO, otherwise the Hungarian
    algorithm (scipy's linear_sum_assignment, one call per prompt) up to K = MAX_CLUSTERS."""
    B, K, K2 = score.shape
    if K != K2:
        raise ValueError(f"score must be square, got {tuple(score.shape)}")
    if K <= ENUMERATE_UP_TO:
        perms = torch.tensor(list(itertools.permutations(range(K))), device=score.device)
        rows = torch.arange(K, device=score.device)
        total = score[:, rows, perms].sum(-1)  # [B, K!]
        return perms[total.argmax(1)]
    if K > MAX_CLUSTERS:
        from icsim.errors import InputError

        raise InputError(f"best permutation is computed for K <= {MAX_CLUSTERS}, got K = {K}.")
    from scipy.optimize import linear_sum_assignment

    cost = (-score).double().cpu().numpy()
    out = [torch.as_tensor(linear_sum_assignment(c)[1]) for c in cost]
    return torch.stack(out).to(score.device)


def matched_labels(labels_true, labels_pred, n_clusters: int, mask=None) -> torch.Tensor:
    """labels_pred relabelled by the permutation that agrees best with labels_true [B, n]."""
    C = contingency(labels_true, labels_pred, mask, n_clusters, n_clusters)
    perm = best_assignment(C)  # true k -> predicted perm[k]
    inverse = torch.argsort(perm, dim=1)  # predicted j -> true inverse[j]
    out = torch.gather(inverse, 1, labels_pred.clamp(min=0).long())
    return torch.where(labels_pred >= 0, out, -1)


def misclustering_rate(labels_true, labels_pred, n_clusters: int, mask=None) -> torch.Tensor:
    """[B] fraction of points misclustered under the best permutation of the predicted labels
    (the loss of Lu & Zhou 2016 and He et al. 2025)."""
    C = contingency(labels_true, labels_pred, mask, n_clusters, n_clusters)
    perm = best_assignment(C)
    correct = torch.gather(C, 2, perm[..., None]).sum((1, 2))
    return 1 - correct / C.sum((1, 2)).clamp(min=1)


def _log_prob_scores(log_probs, labels_true, mask):
    """([B, K, K] Σ_i [z_i = k] log p_ij, valid [B, n])."""
    K = log_probs.shape[-1]
    valid = _valid(labels_true, labels_true, mask)
    onehot = torch.nn.functional.one_hot(labels_true.clamp(min=0).long(), K)
    onehot = onehot.to(log_probs.dtype) * valid[..., None]
    return torch.einsum("bnk,bnj->bkj", onehot, log_probs), valid


def matched_targets(log_probs, labels_true, mask=None) -> torch.Tensor:
    """labels_true [B, n] renamed by the permutation under which the soft labels log_probs
    [B, n, K] give them the highest likelihood (−1 at left-out points): the per-point targets
    of a cross-entropy that does not care how the clusters are numbered."""
    score, valid = _log_prob_scores(log_probs, labels_true, mask)
    perm = best_assignment(score)  # true k -> output perm[k]
    out = torch.gather(perm, 1, labels_true.clamp(min=0).long())
    return torch.where(valid, out, -1)


def soft_cross_entropy(log_probs, labels_true, mask=None) -> torch.Tensor:
    """[B] mean −log p(z_i) per point of soft labels log_probs [B, n, K], under the label
    permutation that makes it smallest."""
    score, valid = _log_prob_scores(log_probs, labels_true, mask)
    perm = best_assignment(score)
    total = torch.gather(score, 2, perm[..., None]).sum((1, 2))
    return -total / valid.sum(1).clamp(min=1)


def minimax_rate(separation, sigma):
    """exp(−Δ²/8σ²): the minimax misclustering rate of an isotropic mixture with minimum centre
    separation Δ, up to the (1 + o(1)) in the exponent (Lu & Zhou 2016; He et al. 2025)."""
    if isinstance(separation, torch.Tensor) or isinstance(sigma, torch.Tensor):
        sep = torch.as_tensor(separation, dtype=torch.float64)
        return torch.exp(-(sep**2) / (8 * torch.as_tensor(sigma, dtype=torch.float64) ** 2))
    return math.exp(-(separation**2) / (8 * sigma**2))
