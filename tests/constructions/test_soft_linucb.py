"""soft_linucb: a causal ReLU-attention transformer whose weights compute soft LinUCB's logits,
against the policy's log-probabilities within its stated bound; the bound catches a broken √ unit
and a broken solver head; the error falls with width (√ interpolant) and depth (Nesterov steps);
the weights are an ordinary icsim model (rebuilt from its config, same outputs)."""

import copy

import numpy as np
import pytest
import torch

from icsim.constructions import verify as V
from icsim.constructions.soft_linucb import (
    _histories,
    error_table,
    run_model,
    soft_linucb,
    token_layout,
)
from icsim.errors import InputError

SMALL = {"steps": 8, "dim": 3, "n_problems": 20, "n_actions": 4}


@pytest.fixture(scope="module")
def small():
    return soft_linucb(dim=3, steps=8, n_actions=4)


def test_verifies_within_its_stated_bound():
    r = V.verify("soft_linucb", **SMALL)
    assert r.passed, r.summary()
    assert r.max_error < 1e-3 < r.bound < 0.2, (r.max_error, r.bound)  # measured ~1e-4, 5e-2
    assert len(r.per_step) == 9 and "stated bound" in r.criterion


def test_it_is_a_relu_attention_transformer_rebuilt_from_its_config(small):
    from icsim.models import build

    model, fmt = small
    cfg = model.cfg
    assert (cfg.attention, cfg.activation, cfg.causal, cfg.mlp) == ("relu", "relu", True, True)
    twin = build("transformer", cfg.to_dict()).double()
    twin.load_state_dict(model.state_dict())
    hist, _ = _histories(model.construction, 3, torch.Generator().manual_seed(1))
    assert torch.equal(run_model(twin, fmt, *hist), run_model(model, fmt, *hist))


def _broken(model, edit):
    broken = copy.deepcopy(model)
    with torch.no_grad():
        edit(broken, model.construction.formulas)
    return broken


def _fails(model, fmt):
    return not V.verify_model(model, fmt, n_problems=10, condition_numbers=(1,)).passed


def test_a_broken_sqrt_unit_or_solver_head_fails_the_bound(small):
    """Heads per Nesterov block: ridge +, bonus + (K), ridge −, bonus − (K)."""
    model, fmt = small
    s0 = token_layout(3, 4).s.start

    def sqrt_unit(m, f):  # one ReLU unit of action 0's √ interpolant off
        m.blocks[f["sqrt_blocks"][0]].mlp.proj.weight[s0, 3] += 0.5

    def solver(m, f):  # the ridge solve's ReLU(−z) head silenced in every Nesterov block
        for block in m.blocks[: f["solver_steps"]]:
            block.attn.proj.weight.view(m.cfg.n_embd, m.cfg.n_head, -1)[:, 4 + 1] = 0

    assert _fails(_broken(model, sqrt_unit), fmt)
    assert _fails(_broken(model, solver), fmt)


def test_error_falls_with_width_and_with_solver_steps():
    t = error_table(widths=(16, 32, 64), solver_steps=(16, 32, 48), n_problems=10, dim=3,
                    steps=6, n_actions=4)  # fmt: skip
    w = [e for e, _ in t["width"].values()]
    k = [e for e, _ in t["solver_steps"].values()]
    assert w[0] > 2 * w[1] > 4 * w[2], w  # O(1/W) stated; measured ~×4 per doubling
    assert k[0] > 10 * k[1] > 100 * k[2], k  # geometric in k
    for e, bound in [*t["width"].values(), *t["solver_steps"].values()]:
        assert e <= bound


@pytest.mark.parametrize("params", [{"dim": 6}, {"n_actions": 11}, {"steps": 51},
                                    {"n_actions": 1}, {"temperature": 0}])  # fmt: skip
def test_out_of_range_is_one_input_error(params):
    with pytest.raises(InputError):
        soft_linucb(**params)


def test_model_matches_a_numpy_soft_linucb_on_every_prefix():
    """Independent of the policy code: A = I + XᵀX, np.linalg.solve, softmax(s/τ) in NumPy."""
    model, fmt = soft_linucb(dim=3, steps=8, n_actions=4, width=1024)
    (f, actions, r), _ = _histories(model.construction, 3, torch.Generator().manual_seed(2))
    ours = run_model(model, fmt, f, actions, r).numpy()  # [T+1, B, K]
    for i in range(f.shape[0]):
        Fi, ai, ri = f[i].numpy(), actions[i].numpy(), r[i].numpy()
        for t in range(9):
            Xi = Fi[ai[:t]]
            A = np.eye(3) + Xi.T @ Xi
            s = Fi @ np.linalg.solve(A, Xi.T @ ri[:t]) + 2.0 * np.sqrt(
                np.einsum("kd,kd->k", Fi, np.linalg.solve(A, Fi.T).T))  # fmt: skip
            z = s / 0.1
            logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
            assert np.abs(ours[t, i] - logp).max() < 5e-3, (i, t)


def test_hidden_state_holds_the_ridge_estimate_after_the_solver(small):
    """The wx slot after the k Nesterov blocks is ŵ_t = (I + XᵀX)⁻¹Xᵀr at every prefix (NumPy)."""
    model, fmt = small
    k = model.construction.formulas["solver_steps"]
    (f, actions, r), _ = _histories(model.construction, 2, torch.Generator().manual_seed(3))
    with torch.no_grad():
        _, hidden = model(fmt.encode(f, actions, r), return_hidden=True)
    wx = hidden[k][:, 2:, token_layout(3, 4).wx].numpy()  # tokens d − 1 + t, t = 0..T
    for i in range(2):
        for t in range(9):
            Xi = f[i].numpy()[actions[i, :t].numpy()]
            w = np.linalg.solve(np.eye(3) + Xi.T @ Xi, Xi.T @ r[i, :t].numpy())
            np.testing.assert_allclose(wx[i, t], w, atol=1e-5)


def test_the_construction_acts_online_as_soft_linucb():
    """Played by `rollout` with the same uniforms, the construction chooses soft LinUCB's arms."""
    import icsim.environments as E
    from icsim.constructions.soft_linucb import ConstructionPolicy
    from icsim.environments.policies import get
    from icsim.environments.rollout import rollout

    model, fmt = soft_linucb(dim=3, steps=8, n_actions=4, width=1024)
    env = E.get("linear_bandit", dim=3, n_actions=4, horizon=8).sample(
        8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)  # fmt: skip
    ours = rollout(env, ConstructionPolicy(model, fmt), generator=torch.Generator().manual_seed(1))
    ref = rollout(env, get("soft_linucb"), generator=torch.Generator().manual_seed(1))
    assert torch.equal(ours.actions, ref.actions)
    assert (ours.probs - ref.probs).abs().max() < 1e-3
    with pytest.raises(InputError):
        rollout(E.get("linear_bandit", dim=3, n_actions=4, horizon=10).sample(2),
                ConstructionPolicy(model, fmt))  # fmt: skip
