"""Bandit histories as tokens (Lin, Bai, Mei, ICLR 2024, their code's format; PAPERS.md §5), the
histories a behaviour plays and an expert labels (Algorithm Distillation, Decision-Pretrained
Transformer, mixtures of behaviours), and a trained model as a bandit policy.

One decision token before every step and one outcome token after it, so one causal forward pass
scores every decision from its own prefix:

    decision t: [a_1 … a_K (flattened action set) | 0_K | 0 | 1 | 0]
    outcome t:  [0_{K·d}                          | e_{a_t} | r_t | 0 | 1]

The logits over the K actions are read at the decision tokens; the position is the model's
learned positional embedding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from icsim import _validate as V
from icsim.environments.base import BanditBatch
from icsim.environments.policies import Policy, one_hot, sample_from
from icsim.environments.rollout import rollout_mixture
from icsim.errors import InputError
from icsim.models.formats import FORMATS, TokenFormat

LABELS = ("behaviour", "optimal", "expert")


class History(NamedTuple):
    """B played histories of T steps: the action sets features [B, K, d], actions [B, T],
    rewards [B, T], and the labels [B, T] the model learns to choose at each step."""

    features: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    labels: torch.Tensor

    @property
    def n_points(self) -> int:
        return self.actions.shape[1]


@FORMATS.register("bandit_history")
@dataclass(frozen=True)
class BanditTokens(TokenFormat):
    """2T tokens per history, width K·d + K + 3 (see the module docstring)."""

    n_actions: int
    dim: int

    def __post_init__(self):
        V.positive_int("n_actions", self.n_actions)
        V.positive_int("dim", self.dim)

    @property
    def width(self) -> int:
        return self.n_actions * self.dim + self.n_actions + 3

    def encode(self, batch: History) -> torch.Tensor:
        f = batch.features
        B, K, d = f.shape
        if (K, d) != (self.n_actions, self.dim):
            raise InputError(
                f"histories of K={K} actions in d={d} do not fit a bandit_history format of "
                f"n_actions={self.n_actions}, dim={self.dim}; build the format for them."
            )
        T, Kd = batch.actions.shape[1], K * d
        tokens = f.new_zeros(B, T, 2, self.width)
        tokens[:, :, 0, :Kd] = f.reshape(B, 1, Kd)
        tokens[:, :, 0, -2] = 1
        tokens[:, :, 1, Kd : Kd + K] = one_hot(batch.actions, K, f.dtype)
        tokens[:, :, 1, Kd + K] = batch.rewards
        tokens[:, :, 1, -1] = 1
        return tokens.reshape(B, 2 * T, self.width)

    def positions(self, n_points):
        return torch.arange(0, 2 * n_points, 2)

    def targets(self, batch: History) -> torch.Tensor:
        return batch.labels


def collect(env: BanditBatch, behaviours: Sequence[tuple[Policy, float]], labels="behaviour",
            expert: Policy | None = None, generator=None) -> History:  # fmt: skip
    """Histories played by `behaviours` (policies at ratios, e.g. [(linucb, 1)] or [(uniform, 1),
    (thompson, 1)]) and labelled by `labels`: "behaviour" (Algorithm Distillation: the
    behaviour's own actions; Laskin et al. 2023), "optimal" (Decision-Pretrained Transformer:
    the best arm at every step; Lee et al. 2023) or "expert" (`expert`'s choice on the played
    history; Lin et al.'s distribution-ratio experiment)."""
    V.choice("labels", labels, LABELS)
    if (labels == "expert") != (expert is not None):
        raise InputError('give an expert policy exactly when labels="expert".')
    played = rollout_mixture(env, behaviours, generator=generator, expert=expert)
    if labels == "behaviour":
        target = played.actions
    elif labels == "optimal":
        target = env.optimal_action().unsqueeze(1).expand_as(played.actions)
    else:
        target = played.expert_actions
    return History(env.features, played.actions, played.rewards, target)


@dataclass(frozen=True, eq=False)
class TransformerPolicy(Policy):
    """A model trained on `BanditTokens` acting online: at step t it reads the 2t + 1 tokens of
    the history so far and draws from softmax(logits) (`greedy`: the argmax)."""

    model: torch.nn.Module
    fmt: BanditTokens
    greedy: bool = False
    name = "transformer"

    def probs(self, env, state, t, carry=None):
        # steps 0..t (step t's outcome not yet played, and cut off): the 2t + 1 tokens so far
        upto = History(env.features, state.actions[:, : t + 1], state.rewards[:, : t + 1], None)
        tokens = self.fmt.encode(upto)[:, : 2 * t + 1]
        with torch.no_grad():
            logits = self.model(tokens)[:, -1].to(env.features.dtype)
        return torch.softmax(logits, -1)

    def act(self, env, state, t, draws, carry=None):
        p = self.probs(env, state, t)
        actions = p.argmax(-1) if self.greedy else sample_from(p, draws[0])
        return p, actions


# -- history shards: safetensors + a JSON manifest (no code is ever deserialised) ----------------
SHARD, MANIFEST = "histories.safetensors", "manifest.json"


def save_histories(directory, history: History, meta: dict | None = None) -> Path:
    """Write `history` as `histories.safetensors` and a `manifest.json` holding its shapes, its
    SHA-256 and `meta` (how it was collected), so a later load can refuse a damaged copy."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = save({k: v.detach().cpu().clone() for k, v in history._asdict().items()})
    (directory / SHARD).write_bytes(data)
    manifest = {"sha256": hashlib.sha256(data).hexdigest(), "meta": meta or {},
                "shapes": {k: list(v.shape) for k, v in history._asdict().items()}}  # fmt: skip
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return directory


def load_histories(directory, device="cpu") -> tuple[History, dict]:
    """(History, meta) of a shard written by `save_histories`; a missing, truncated, altered or
    inconsistent shard is one InputError naming the file and the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    directory = Path(directory)
    fix = "collect the histories again (or restore the shard)"
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        data = (directory / SHARD).read_bytes()
    except (OSError, ValueError) as e:
        raise InputError(f"history shard {directory} cannot be read ({e}); {fix}.") from None
    if not isinstance(manifest, dict) or hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise InputError(
            f"history shard {directory / SHARD} is corrupt (checksum mismatch); {fix}."
        )
    try:
        t = load(data)
        h = History(*(t[k].to(device) for k in History._fields))
    except (SafetensorError, KeyError, ValueError) as e:
        raise InputError(f"history shard {directory / SHARD} is corrupt ({e}); {fix}.") from None
    B, T = h.actions.shape
    K = h.features.shape[1]
    if h.rewards.shape != (B, T) or h.labels.shape != (B, T) or h.features.shape[0] != B or not (
        0 <= int(h.actions.min()) and int(h.actions.max()) < K
        and 0 <= int(h.labels.min()) and int(h.labels.max()) < K
    ):  # fmt: skip
        raise InputError(f"history shard {directory / SHARD} is inconsistent; {fix}.")
    return h, manifest.get("meta", {})
