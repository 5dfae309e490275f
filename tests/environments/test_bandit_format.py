"""Bandit histories as tokens, the labels of AD / DPT / expert data, the trained-model policy
(its online probabilities equal one forward pass over the whole history), and the ReLU
attention the paper's model uses (divided by the visible tokens, every head used)."""

import numpy as np
import pytest
import torch

import icsim.environments as E
from icsim.environments.policies import get
from icsim.environments.rollout import rollout
from icsim.errors import InputError
from icsim.models import ModelConfig, attend, build
from icsim.models.bandit_format import BanditTokens, History, TransformerPolicy, collect
from icsim.training import losses


def _env(n=4, T=6):
    g = torch.Generator().manual_seed(0)
    return E.get("linear_bandit", dim=2, n_actions=3, horizon=T).sample(n, generator=g)


def test_tokens_hold_the_action_set_then_the_outcome():
    env = _env()
    h = collect(env, [(get("linucb"), 1.0)])
    tok = BanditTokens(3, 2).encode(h)
    assert tok.shape == (4, 12, 3 * 2 + 3 + 3)
    b, t = 1, 2
    assert torch.equal(tok[b, 2 * t, :6], env.features[b].reshape(-1))
    assert tok[b, 2 * t, 6:].tolist() == [0, 0, 0, 0, 1, 0]
    out = tok[b, 2 * t + 1]
    assert out[:6].abs().sum() == 0 and out[6 + h.actions[b, t]] == 1 and out[6:9].sum() == 1
    assert out[9] == h.rewards[b, t] and out[10:].tolist() == [0, 1]
    with pytest.raises(InputError, match="do not fit"):
        BanditTokens(4, 2).encode(h)


def test_labels_behaviour_optimal_and_expert():
    env = _env()
    ad = collect(env, [(get("linucb"), 1.0)])
    assert torch.equal(ad.labels, ad.actions)
    dpt = collect(env, [(get("linucb"), 1.0)], "optimal")
    assert torch.equal(dpt.actions, ad.actions)  # same histories (same default generator)
    assert torch.equal(dpt.labels, env.optimal_action()[:, None].expand(4, 6))
    ts = get("thompson")
    ex = collect(env, [(get("uniform"), 1.0)], "expert", ts)
    assert ex.labels.shape == (4, 6) and not torch.equal(ex.labels, ex.actions)
    with pytest.raises(InputError):
        collect(env, [(get("uniform"), 1.0)], "expert")


def test_the_model_policy_scores_each_step_from_its_prefix():
    env = _env(T=8)
    fmt = BanditTokens(3, 2)
    cfg = ModelConfig(n_dims_in=fmt.width, n_dims_out=3, n_layer=2, n_head=4, n_embd=16,
                      attention="relu", max_positions=16)  # fmt: skip
    torch.manual_seed(0)
    model = build("transformer", cfg).eval()
    played = rollout(env, TransformerPolicy(model, fmt), generator=torch.Generator().manual_seed(1))
    full = model(fmt.encode(History(env.features, played.actions, played.rewards, None)))
    assert torch.allclose(torch.softmax(full[:, 0::2], -1), played.probs, atol=1e-6)
    # the training loss is cross-entropy of exactly these logits against the labels
    h = History(env.features, played.actions, played.rewards, played.actions)
    ce = torch.nn.functional.cross_entropy(full[:, 0::2].reshape(-1, 3), h.labels.reshape(-1))
    assert torch.allclose(losses.cross_entropy_every_prefix(fmt)(model, h), ce)


def test_relu_attention_divides_by_visible_tokens_in_every_head():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    ours = attend(q, k, v, "relu", None, causal=True, normalize=False).numpy()
    qn, kn, vn = q.numpy(), k.numpy(), v.numpy()
    for b in range(2):
        for h in range(4):  # every head its own ReLU(q kᵀ) v over the i + 1 visible keys
            for i in range(5):
                w = np.maximum(kn[b, h, : i + 1] @ qn[b, h, i], 0) / (i + 1)
                np.testing.assert_allclose(ours[b, h, i], w @ vn[b, h, : i + 1], atol=1e-12)


def test_history_shards_round_trip_and_refuse_corruption(tmp_path):
    from icsim.models.bandit_format import load_histories, save_histories

    h = collect(_env(), [(get("linucb"), 1.0)])
    save_histories(tmp_path / "s", h, {"behaviour": "linucb"})
    back, meta = load_histories(tmp_path / "s")
    assert meta == {"behaviour": "linucb"} and all(map(torch.equal, back, h))
    shard = tmp_path / "s" / "histories.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupt"):
        load_histories(tmp_path / "s")
    shard.unlink()
    with pytest.raises(InputError, match="cannot be read"):
        load_histories(tmp_path / "s")
