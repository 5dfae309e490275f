"""Soft LinUCB as the weights of a ReLU-attention + ReLU-MLP transformer (Lin, Bai, Mei, ICLR 2024,
Thm 8's route: accelerated GD on the ridge problem, one more solve per action for the bonus, an
MLP for √·, logits scaled by 1/τ; our own weights).

Soft LinUCB plays softmax(s/τ), s_k = ⟨a_k, ŵ⟩ + α √(a_kᵀA⁻¹a_k), A = λI + Σ_i a_i a_iᵀ,
ŵ = A⁻¹ Σ_i a_i r_i (`icsim.environments.policies.LinUCB`, temperature τ > 0).

Tokens (`HistoryTokens`): d prior tokens (a = √λ e_m, r = 0: ridge as d pseudo-observations),
then one token per played step (a_i, r_i); every token also carries the action set F = (a_1..a_K)
(fixed per environment, as in the paper's tokens) and scratch. Causal ReLU attention averages
over the n = d + t visible tokens, so at the token after t steps one attention head computes

    mean_j a_j (a_jᵀy − r_j) = (A y − b)/n        (two heads: ReLU(z) − ReLU(−z) = z),

the gradient of the ridge problem scaled by 1/n: GD on (A/n)w = b/n converges to ŵ = A⁻¹b, and
on (A/n)u_k = a_k to u_k = n A⁻¹a_k. The spectrum of A/n lies in [μ, L] for every t ≤ T,
μ = λ/(T + d), L = max(λ/d, (λ + T B²)/(T + d)) (B ≥ ‖a‖), so one step size serves every token.

Token: [a (d) | r | F (K d) | first | wx, wy (d, d) | ux, uy (K d, K d) | q (K) | s (K)].
Blocks (attention, then MLP), k Nesterov steps (constant momentum β = (√κ − 1)/(√κ + 1), step
1/L, κ = L/μ, from 0) and max(2, G) read-out blocks:
    1..k  attn wy −= η mean_j a_j(a_jᵀwy − r_j) (2 heads);  uy_k −= η mean_j a_j a_jᵀuy_k
          (2 heads per action);  mlp (exact ReLU pairs) z = wy − wx: wx += z, wy += βz; and
          z = uy + ηa_k − ux: ux += z, uy += βz + ηa_k (Nesterov: x' = y − η∇, y' = x' + β(x' − x))
    k+1   attn q_k = ⟨ux_k, a_k⟩/n = a_kᵀÂ⁻¹a_k (2K heads)   mlp √ of the first actions' q
    k+2   attn s_k = ⟨wx, a_k⟩ (2K heads)                      mlp √ of the next ones, s += α√q
    ...   (G = ⌈K/m⌉ groups of m = ⌊hidden/(W + 1)⌋ interpolants)
read-out: logits = s/τ (the policy is their softmax).

Products of unknowns, and how each is written: a_j(a_jᵀy) is score × value (query iterate × key
input); ⟨u_k, a_k⟩ and ⟨ŵ, a_k⟩ multiply two quantities of the *same* token, which attention
cannot do in general — here the key's copy of a_k stands in for the query's, exact because every
token of an environment carries the same action set; the division by n is a value that is 1 on
the first token only (mean over n keys). √ is the only approximation: a ReLU interpolant on the
knots (j/W)² q_max, q_max = B²/λ ≥ q, flat outside, error ≤ √q_max/(4W).

Stated bound (per history and step; `logprob_bound`): with
e = √((L + μ)/μ)(1 − 1/√κ)^{k/2} (Nesterov 2004, Thm 2.2.3: ‖x_k − x*‖ ≤ e‖x*‖),
|Δq| ≤ B² e/λ, every logit is off by at most
    δ = (1/τ)[B e ‖b‖/λ + α(√q_max/(4W) + min(√|Δq|, |Δq|/√q))]
and every log-probability by at most 2δ. Interpolation falls as 1/W, the solver term
geometrically in k (depth); `error_table` measures both. Measured (d = 5, K = 10, T = 10, τ = 0.1,
20 soft-LinUCB histories, every prefix; largest |Δ log p| / stated bound):

    W (k = 210 default)   16: 0.20 / 1.4    32: 0.045 / 0.70   64: 0.011 / 0.35
                          128: 0.0029 / 0.18   256: 0.00050 / 0.089   (×4 per doubling)
    k (W = 1024)          16: 3.5 / 3.2e3   32: 0.47 / 9.8e2   64: 0.0067 / 1.0e2
                          128: 3.9e-5 / 0.95   256: 3.9e-5 / 0.022   (floor: W = 1024's √)

The bound's solver term is the worst case over every spectrum in [μ, L] (κ = L/μ = 51 here); the
histories' own A/n are better conditioned, so the measured error falls faster than stated.
`icsim construct soft_linucb --verify` (d = 5, K = 10, T = 20, W = 128: 308 Nesterov blocks,
318 layers, 22 heads of dim 6, width 187, 56.7M float64 weights, 20 histories): largest
relative error 1.9e-4 against the stated bound 5.5e-2.

What is not done: the paper's tokens carry the played action one-hot (the `bandit_history`
format); here each step's token carries the action's vector a_i (one gated ReLU layer,
a_i = Σ_k 1[i = k] a_k, would convert them: not written).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.constructions.base import (
    CONSTRUCTIONS,
    Check,
    ConstructionInfo,
    Criterion,
    empty_model,
    finish,
    info_of,
)
from icsim.constructions.block_writer import ONE, BlockWriter, forms
from icsim.environments.policies import Policy
from icsim.errors import InputError
from icsim.models.construction_formats import Layout

LIN = "Lin, Bai, Mei 2024, Transformers as decision makers (ICLR), Thm 8"
LIMITS = {"dim": 5, "n_actions": 10, "steps": 50}
SOLVER_TOLERANCE = 1e-6  # default relative solver error e: its term stays below √'s at W = 128


def token_layout(d: int, K: int) -> Layout:
    return Layout(a=d, r=1, F=K * d, first=1, wx=d, wy=d, ux=K * d, uy=K * d, q=K, s=K)


@dataclass(frozen=True)
class HistoryTokens:
    """d prior tokens then one token per played step (module docstring); the policy after t steps
    is read at token d − 1 + t, so one causal pass scores every prefix t = 0..T."""

    dim: int
    n_actions: int
    ridge: float

    @property
    def layout(self) -> Layout:
        return token_layout(self.dim, self.n_actions)

    def encode(self, features, actions, rewards) -> torch.Tensor:
        """features [B, K, d], actions [B, T] (arm indices), rewards [B, T] -> [B, d + T, width]."""
        B, K, d = features.shape
        if (K, d) != (self.n_actions, self.dim):
            raise InputError(f"histories of K={K} actions in d={d} do not fit a construction "
                             f"built for n_actions={self.n_actions}, dim={self.dim}.")  # fmt: skip
        S, T = self.layout, actions.shape[1]
        tokens = features.new_zeros(B, d + T, S.width)
        tokens[:, :d, S.a] = math.sqrt(self.ridge) * torch.eye(d, dtype=features.dtype,
                                                               device=features.device)  # fmt: skip
        tokens[:, d:, S.a] = features.gather(1, actions.unsqueeze(-1).expand(-1, -1, d))
        tokens[:, d:, S.r.start] = rewards
        tokens[:, :, S.F] = features.reshape(B, 1, K * d)
        tokens[:, 0, S.first.start] = 1.0
        return tokens

    def decisions(self, out: torch.Tensor) -> torch.Tensor:
        """Model output [B, d + T, K] -> log-probabilities after t = 0..T steps [T + 1, B, K]."""
        return torch.log_softmax(out[:, self.dim - 1 :], -1).transpose(0, 1)


def sqrt_knots(q_max: float, W: int) -> torch.Tensor:
    return q_max * torch.linspace(0, 1, W + 1, dtype=torch.float64) ** 2


def spectrum(lam: float, T: int, d: int, Ba: float) -> tuple[float, float]:
    """(μ, L): the spectrum of A/n for every history of ≤ T steps (module docstring)."""
    return lam / (T + d), max(lam / d, (lam + T * Ba**2) / (T + d))


def solver_error(mu: float, L: float, k: int) -> float:
    """Nesterov (constant momentum) on a μ-strongly convex, L-smooth quadratic from x₀ = 0:
    f(x_k) − f* ≤ (L + μ)‖x*‖²/2 (1 − 1/√κ)^k (Nesterov 2004, Thm 2.2.3), so
    ‖x_k − x*‖ ≤ √((L + μ)/μ) (1 − 1/√κ)^{k/2} ‖x*‖."""
    return math.sqrt((L + mu) / mu) * (1 - math.sqrt(mu / L)) ** (k / 2)


def steps_for(mu: float, L: float, tol: float) -> int:
    """The fewest Nesterov steps with solver_error <= tol."""
    return math.ceil(2 * math.log(math.sqrt((L + mu) / mu) / tol) / -math.log1p(-math.sqrt(mu / L)))


# --- writing the blocks -------------------------------------------------------------------------


class _Slots:
    def __init__(self, d: int, K: int):
        self.d, self.K, lay = d, K, token_layout(d, K)
        self.width, self.lay = lay.width, lay
        rng = lambda sl: list(range(sl.start, sl.stop))  # noqa: E731
        names = ("a", "wx", "wy", "q", "s")
        self.a, self.wx, self.wy, self.q, self.s = (rng(getattr(lay, n)) for n in names)
        self.r, self.first = lay.r.start, lay.first.start
        self.F, self.ux, self.uy = (
            [rng(getattr(lay, n))[k * d : (k + 1) * d] for k in range(K)] for n in ("F", "ux", "uy")
        )


def _linear(b: BlockWriter, form: dict, out: dict) -> None:
    """h[slot] += c · form(h) for every {slot: c} in out, exactly: ReLU(z) − ReLU(−z) = z."""
    for sign in (1.0, -1.0):
        for key, c in form.items():
            b.fc[b.unit, key] += sign * c
        for slot, c in out.items():
            b.pr[slot, b.unit] += sign * c
        b.unit += 1


def _nesterov(b: BlockWriter, S: _Slots, eta: float, beta: float) -> None:
    """One Nesterov step of every solve (module docstring, blocks 1..k)."""
    for sign in (1.0, -1.0):  # ridge: score a_jᵀwy − r_j, value a_j
        qf, kf = forms(S.wy, sign) + [{None: sign}], forms(S.a) + [{S.r: -1.0}]
        b.add_head(qf, kf, forms(S.a), forms(S.wy, -eta * sign))
        for k in range(S.K):  # bonus solves: score a_jᵀuy_k, value a_j
            b.add_head(forms(S.uy[k], sign), forms(S.a),
                       forms(S.a), forms(S.uy[k], -eta * sign))  # fmt: skip
    for x, y in zip(S.wx, S.wy, strict=True):
        _linear(b, {y: 1.0, x: -1.0}, {x: 1.0, y: beta})
    for k in range(S.K):
        for x, y, f in zip(S.ux[k], S.uy[k], S.F[k], strict=True):
            _linear(b, {y: 1.0, x: -1.0, f: eta}, {x: 1.0, y: beta})
            _linear(b, {f: 1.0}, {y: eta})


def _quadratic_forms(b: BlockWriter, S: _Slots) -> None:
    """q_k ← ⟨ux_k, a_k⟩/n: score from the key's copy of a_k, value 1 on the first token only."""
    for k in range(S.K):
        for sign in (1.0, -1.0):
            b.add_head(forms(S.ux[k], sign), forms(S.F[k]),
                       [{S.first: 1.0}], [{S.q[k]: sign}])  # fmt: skip


def _means(b: BlockWriter, S: _Slots) -> None:
    """s_k += ⟨wx, a_k⟩: score from the key's copy of a_k, value 1 on every key."""
    for k in range(S.K):
        for sign in (1.0, -1.0):
            b.add_head(forms(S.wx, sign), forms(S.F[k]), [ONE],
                       [{S.s[k]: sign}])  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """Sizes of the construction: Nesterov steps k, √ interpolants per block m, blocks."""

    k: int
    per_block: int
    groups: int
    hidden: int

    @property
    def layers(self) -> int:
        return self.k + max(2, self.groups)


def plan(d: int, K: int, W: int, k: int) -> Plan:
    hidden = max(2 * d + 4 * K * d, W + 1)
    m = hidden // (W + 1)
    return Plan(k, m, -(-K // m), hidden)


class SoftLinUCBCheck(Check):
    """Fresh linear bandits (a ~ U[−1, 1]^d) played by soft LinUCB; the construction's
    log-probabilities after every history length t = 0..T against the policy's. Criterion: the
    stated bound (`logprob_bound`, max over histories), as a relative error of the K-vector."""

    task = None
    defaults = {"steps": 20, "dim": 5, "n_problems": 20}  # 56M float64 weights: ~20 s on a CPU
    condition_numbers = (1,)

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        if task_params.get("condition_number", 1) != 1 or n_context is not None:
            raise InputError("soft_linucb's histories have no condition number or context size: "
                             "set steps (the horizon T) instead.")  # fmt: skip
        return _histories(info, n_problems, generator)

    def reference(self, info, problems):
        return problems[1]

    def model_steps(self, model, fmt, problems, dtype):
        return run_model(model, fmt, *problems[0], dtype=dtype)  # model already in dtype

    def criterion(self, run):
        (feats, actions, rewards), ref = run.problems[0]
        absolute = logprob_bound(run.model, feats, actions, rewards)  # [T+1, B]
        rel = absolute * math.sqrt(ref.shape[-1]) / ref.norm(dim=-1)
        bound = float(rel.max())
        return Criterion(bound, f"stated bound: |Δ log p| <= 2δ per history (module docstring), "
                                f"as a relative error <= {bound:.2e}")  # fmt: skip


@CONSTRUCTIONS.register("soft_linucb", check=SoftLinUCBCheck)
def soft_linucb(dim: int = 5, steps: int = 20, n_actions: int = 10, ridge: float = 1.0,
                alpha: float = 2.0, temperature: float = 0.1, width: int = 128,
                solver_steps: int | None = None, norm_bound: float | None = None):  # fmt: skip
    """Soft LinUCB's logits for every prefix of histories of up to `steps` = T decisions, as a
    causal ReLU-attention transformer (module docstring). dim d ≤ 5, n_actions K ≤ 10, T ≤ 50.
    ridge λ, alpha α, temperature τ: the policy's (defaults 1, 2, 0.1). width W: √'s ReLU units
    per action (default 128). solver_steps k: Nesterov steps = layers (default: the fewest with
    solver error ≤ 1e-6). norm_bound B ≥ ‖a_k‖ (default √d: actions in [−1, 1]^d).
    Returns (model, HistoryTokens): `fmt.decisions(model(fmt.encode(features, actions, r)))`."""
    d = V.positive_int("dim", dim)
    T = V.positive_int("steps", steps)
    K = V.positive_int("n_actions", n_actions)
    for name, value in (("dim", d), ("n_actions", K), ("steps", T)):
        if value > LIMITS[name]:
            raise InputError(f"soft_linucb is built for {name} <= {LIMITS[name]}, got {value}.")
    if K < 2:
        raise InputError(f"n_actions must be >= 2, got {K}.")
    lam = V.number("ridge", ridge, low=0, low_open=True)
    alpha = V.number("alpha", alpha, low=0)
    tau = V.number("temperature", temperature, low=0, low_open=True)
    W = V.positive_int("width", width)
    Ba = math.sqrt(d) if norm_bound is None else V.number("norm_bound", norm_bound, low=0,
                                                          low_open=True)  # fmt: skip
    mu, L = spectrum(lam, T, d, Ba)
    k = steps_for(mu, L, SOLVER_TOLERANCE) if solver_steps is None else solver_steps
    V.positive_int("solver_steps", k)
    S, P, q_max = _Slots(d, K), plan(d, K, W, k), Ba**2 / lam
    heads = 2 * K + 2
    model = empty_model(width=S.width, layers=P.layers, heads=heads, head_dim=d + 1, n_out=K,
                        attention="relu", causal=True, mlp=True, mlp_hidden=P.hidden,
                        activation="relu", bias=True)  # fmt: skip
    blocks = [BlockWriter(block) for block in model.blocks]
    kappa = L / mu
    eta, beta = 1 / L, (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    for b in blocks[:k]:
        _nesterov(b, S, eta, beta)
    _quadratic_forms(blocks[k], S)
    _means(blocks[k + 1], S)
    knots = sqrt_knots(q_max, W).numpy()
    for a in range(K):
        blocks[k + a // P.per_block].add_interpolant({S.q[a]: 1.0}, knots, knots**0.5, S.s[a],
                                                     alpha)  # fmt: skip
    with torch.no_grad():
        model.read_out.weight[torch.arange(K), torch.tensor(S.s)] = 1 / tau
    info = ConstructionInfo(
        name="soft_linucb", citation=LIN, algorithm="soft_linucb",
        hyperparameters={"n_actions": K, "ridge": lam, "alpha": alpha, "temperature": tau},
        steps=T, dim=d, layers=P.layers, heads=heads, width=S.width, head_dim=d + 1,
        layers_per_step=0, block_offset=P.layers,
        formulas={
            "layers": "k + max(2, ⌈K/m⌉): k Nesterov blocks, then q, ⟨a_k, ŵ⟩ and √ blocks",
            "heads": "2K + 2 ReLU heads (a ± pair per solve)", "head_dim": "d + 1",
            "width": "3d + 3Kd + 2K + 2", "mlp_hidden": P.hidden,
            "sqrt_units_per_action": W + 1, "sqrt_blocks": [k + g for g in range(P.groups)],
            "sqrt_per_block": P.per_block, "solver_steps": k, "mu": mu, "L": L,
            "q_max": q_max, "norm_bound": Ba, "grid_intervals": W,
            "solver_error": solver_error(mu, L, k),
        },
    )  # fmt: skip
    return finish(model, info), HistoryTokens(d, K, lam)


def logprob_bound(model, features, actions, rewards) -> torch.Tensor:
    """The module docstring's bound on max_k |Δ log p_k| after every prefix [T + 1, B]."""
    info, f = info_of(model), features.double()
    F, hp = info.formulas, info.hyperparameters
    e, lam = F["solver_error"], hp["ridge"]
    B, K, d = f.shape
    X = f.gather(1, actions.unsqueeze(-1).expand(-1, -1, d))
    zero = f.new_zeros(B, 1, d, d)
    A = torch.cat([zero, (X.unsqueeze(-1) * X.unsqueeze(-2)).cumsum(1)], 1) + lam * torch.eye(d)
    b = torch.cat([f.new_zeros(B, 1, d), (X * rewards.double().unsqueeze(-1)).cumsum(1)], 1)
    Fs = f.unsqueeze(1).expand(-1, A.shape[1], -1, -1)  # [B, T+1, K, d]
    q = (Fs * torch.linalg.solve(A, Fs.transpose(-1, -2)).transpose(-1, -2)).sum(-1)
    Ba = F["norm_bound"]
    dq = Ba**2 * e / lam
    sqrt_err = torch.minimum(torch.full_like(q, math.sqrt(dq)), dq / q.clamp(min=1e-300).sqrt())
    interp = math.sqrt(F["q_max"]) / (4 * F["grid_intervals"])
    delta = Ba * e * b.norm(dim=-1) / lam + hp["alpha"] * (interp + sqrt_err.amax(-1))
    return (2 * delta / hp["temperature"]).transpose(0, 1)


def _histories(info, n_problems, generator):
    """Soft LinUCB played for T steps on fresh linear bandits (float64): (features, actions,
    rewards) and the policy's own log-probabilities after every prefix t = 0..T [T + 1, B, K]."""
    import icsim.environments as E
    from icsim.environments.policies import LinUCB, init_state, sample_from, update_state

    hp, d, T = info.hyperparameters, info.dim, info.steps
    env = E.get("linear_bandit", dim=d, n_actions=hp["n_actions"], horizon=T).sample(
        n_problems, generator=generator, dtype=torch.float64)  # fmt: skip
    policy = LinUCB(hp["ridge"], hp["alpha"], hp["temperature"], uniform_first=False)
    state, refs = init_state(env), []
    for t in range(T + 1):
        refs.append(policy.probs(env, state, t).log())
        if t < T:
            u = torch.rand(n_problems, generator=generator, dtype=torch.float64)
            a = sample_from(refs[-1].exp(), u)
            state = update_state(state, env, t, a, env.reward(t, a))
    return (env.features, state.actions, state.rewards), torch.stack(refs)


def run_model(model, fmt: HistoryTokens, features, actions, rewards, dtype=torch.float64):
    """The construction's log-probabilities after every prefix [T + 1, B, K]."""
    with torch.no_grad():
        return fmt.decisions(model(fmt.encode(features, actions, rewards).to(dtype)))


@dataclass(frozen=True, eq=False)
class ConstructionPolicy(Policy):
    """The construction acting online (a policy for `rollout` / `play_all`): at step t it reads
    the d + t tokens of the history so far and draws from the softmax of its logits. Steps past
    the construction's T are refused (its step size assumes t ≤ T)."""

    model: torch.nn.Module
    fmt: HistoryTokens
    name = "soft_linucb_construction"

    def probs(self, env, state, t, carry=None):
        T = info_of(self.model).steps
        if t > T:
            raise InputError(f"the construction was built for T = {T} steps, asked for step "
                             f"{t}; build it with steps >= the horizon.")  # fmt: skip
        dtype = next(self.model.parameters()).dtype
        tokens = self.fmt.encode(env.features.to(dtype), state.actions[:, :t],
                                 state.rewards[:, :t].to(dtype))  # fmt: skip
        with torch.no_grad():
            logits = self.model(tokens)[:, -1]
        return torch.softmax(logits, -1).to(env.features.dtype)


def error_table(widths=(16, 32, 64, 128), solver_steps=(16, 32, 64, 128), n_problems=50, seed=0,
                **params) -> dict:  # fmt: skip
    """Largest |Δ log p| against soft LinUCB, and the stated bound, for every width W (k default)
    and every k (W = 1024) on the same histories: {"width": {W: (error, bound)}, "solver_steps":
    {k: (error, bound)}}. Interpolation falls ~×2 (stated) per doubling of W, the solver term
    geometrically in k."""
    base, _ = soft_linucb(**{**params, "solver_steps": 1})  # only its metadata is read
    hist, ref = _histories(info_of(base), n_problems, torch.Generator().manual_seed(seed))

    def err(model_fmt):
        model, fmt = model_fmt
        e = float((run_model(model, fmt, *hist) - ref).abs().max())
        return e, float(logprob_bound(model, *hist).max())

    return {
        "width": {W: err(soft_linucb(**params, width=W)) for W in widths},
        "solver_steps": {k: err(soft_linucb(**params, width=1024, solver_steps=k))
                         for k in solver_steps},
    }  # fmt: skip
