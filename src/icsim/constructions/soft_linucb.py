"""Soft LinUCB unrolled as the layers of Lin, Bai, Mei (ICLR 2024, Thm 8's route), with a stated
bound — an *algorithm-level* construction, not a full set of transformer weights.

Soft LinUCB plays softmax(s/τ) with s_k = ⟨a_k, ŵ⟩ + α √(a_kᵀA⁻¹a_k), A = λI + Σ_i a_i a_iᵀ,
ŵ = A⁻¹ Σ_i a_i r_i (`icsim.environments.policies.LinUCB`, temperature τ > 0). Thm 8 builds it
from: (1) Nesterov-accelerated GD on the ridge problem, one attention layer per step; (2) the
same for v_k = A⁻¹a_k, one solve per action (parallel heads); (3) q_k = ⟨a_k, v_k⟩; (4) an MLP
for √q; (5) logits s/τ. Here:

  * (1)–(3) are unrolled tensor operations, k steps of constant-momentum Nesterov GD from 0 with
    step 1/L and momentum (√κ − 1)/(√κ + 1), L = λ + T·B_a² (B_a ≥ ‖a‖, T the longest history),
    κ = L/λ. Each step is Σ_i a_i(a_iᵀy) − a_i r_i + λy over the history: what one ReLU-attention
    layer computes with two heads (ReLU(z) − ReLU(−z) = z), but **not written as attention
    weights** here.
  * (4) **is weights**: a ReLU MLP (1 → W + 1 → 1, `sqrt_mlp`) interpolating √ on the knots
    q_j = (j/W)² q_max, q_max = B_a²/λ ≥ every q_k, flat outside; its error is ≤ √q_max/(4W).
  * (5) a scale by 1/τ and log-softmax.

Stated bound (per history; `logprob_bound`): with e = √((L+λ)/λ) (1 − 1/√κ)^{k/2} the relative
Nesterov error (‖x_k − x*‖ ≤ e‖x*‖, ‖x*‖ ≤ ‖b‖/λ), every logit is off by at most
  δ = (1/τ) [B_a e ‖Σ a_i r_i‖/λ + α (√q_max/(4W) + √(B_a² e/λ))]
and every log-probability by at most 2δ. The interpolation term falls as 1/W (×2 per width
doubling) and the solver term geometrically with k (depth); `error_table` measures both.
Measured (d = 5, K = 10, T = 10, 50 histories per length, largest |Δ log p|): W = 16, 32, 64,
128 -> 0.14, 0.037, 0.0099, 0.0022 (×4 per doubling: q stays away from 0, where √ is steep);
k = 16, 64, 256 (W = 1024) -> 7.6, 0.011, 3.8e-5. `icsim construct soft_linucb --verify`
(T = 20, 50 histories, W = 256, k = 484): largest relative error 7.6e-5 against the bound 2.6e-2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.constructions.base import CONSTRUCTIONS, Check, ConstructionInfo, Criterion, info_of
from icsim.errors import InputError

LIN = "Lin, Bai, Mei 2024, Transformers as decision makers (ICLR), Thm 8"
LIMITS = {"dim": 5, "n_actions": 10, "steps": 50}


@dataclass(frozen=True)
class BanditPrompts:
    """What the construction reads: K actions of dimension d, histories of up to T steps."""

    n_actions: int
    n_queries: int = 1


def sqrt_knots(q_max: float, W: int) -> torch.Tensor:
    return q_max * torch.linspace(0, 1, W + 1, dtype=torch.float64) ** 2


def solver_error(lam: float, L: float, k: int) -> float:
    """Nesterov (constant momentum) on a μ-strongly convex, L-smooth quadratic from x₀ = 0:
    f(x_k) − f* ≤ (f(0) − f* + μ‖x*‖²/2)(1 − 1/√κ)^k ≤ (L + μ)‖x*‖²/2 (1 − 1/√κ)^k (Nesterov 2004,
    Thm 2.2.3), so ‖x_k − x*‖ ≤ √((L + μ)/μ) (1 − 1/√κ)^{k/2} ‖x*‖."""
    return math.sqrt((L + lam) / lam) * (1 - math.sqrt(lam / L)) ** (k / 2)


class SoftLinUCBModel(torch.nn.Module):
    """Histories (features [B, K, d], played actions X [B, n, d], rewards r [B, n]; rows past a
    history's length zero) -> soft LinUCB log-probabilities [B, K] (module docstring)."""

    def __init__(self, d, K, T, ridge, alpha, temperature, width, solver_steps, norm_bound):
        super().__init__()
        self.ridge, self.alpha, self.tau, self.k = ridge, alpha, temperature, solver_steps
        self.L = ridge + T * norm_bound**2
        self.q_max = norm_bound**2 / ridge
        knots = sqrt_knots(self.q_max, width)
        values = knots.sqrt()
        z = torch.zeros(1, dtype=torch.float64)
        slopes = torch.cat([z, values.diff() / knots.diff(), z])
        # p(q) = Σ_j (slope_j − slope_{j−1}) ReLU(q − q_j): √ at the knots, flat outside
        self.sqrt_mlp = torch.nn.Sequential(
            torch.nn.Linear(1, width + 1), torch.nn.ReLU(), torch.nn.Linear(width + 1, 1)
        ).double()
        with torch.no_grad():
            self.sqrt_mlp[0].weight.fill_(1.0)
            self.sqrt_mlp[0].bias.copy_(-knots)
            self.sqrt_mlp[2].weight.copy_(slopes.diff().unsqueeze(0))
            self.sqrt_mlp[2].bias.zero_()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def solve(self, X, B):
        """k Nesterov steps on ½xᵀAx − bᵀx for every column of B [n_env, d, m] (A from X)."""
        kappa = self.L / self.ridge
        beta = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
        # Σ_i a_i(a_iᵀy) + λy = A y: the sum an attention layer takes over the history, formed once
        A = X.transpose(1, 2) @ X + self.ridge * torch.eye(X.shape[-1], dtype=X.dtype)
        x = prev = torch.zeros_like(B)
        for _ in range(self.k):
            y = x + beta * (x - prev)
            grad = A @ y - B
            prev, x = x, y - grad / self.L
        return x

    def forward(self, features, X, r):
        b = (X * r.unsqueeze(-1)).sum(1, keepdim=True).transpose(1, 2)  # Σ a_i r_i [B, d, 1]
        sol = self.solve(X, torch.cat([b, features.transpose(1, 2)], 2))  # [B, d, 1 + K]
        mean = (features @ sol[:, :, :1]).squeeze(-1)
        q = (features * sol[:, :, 1:].transpose(1, 2)).sum(-1)
        bonus = self.sqrt_mlp(q.unsqueeze(-1)).squeeze(-1)
        return torch.log_softmax((mean + self.alpha * bonus) / self.tau, -1)

    def logprob_bound(self, features, X, r) -> torch.Tensor:
        """The module docstring's bound on max_k |Δ log p_k| per history [B]."""
        e = solver_error(self.ridge, self.L, self.k)
        Ba = features.norm(dim=-1).amax(-1)
        bnorm = (X * r.unsqueeze(-1)).sum(1).norm(dim=-1)
        interp = math.sqrt(self.q_max) / (4 * (self.sqrt_mlp[0].out_features - 1))
        solver_q = (Ba**2 * e / self.ridge).sqrt()  # √|Δq|: √ is ½-Hölder
        delta = Ba * e * bnorm / self.ridge + self.alpha * (interp + solver_q)
        return 2 * delta / self.tau


def _histories(info, n_problems, generator):
    """Soft LinUCB played for T steps on fresh linear bandits; the model's inputs for every
    prefix t = 0..T and the policy's own log-probabilities there (float64)."""
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
    X = env.features.gather(1, state.actions.unsqueeze(-1).expand(-1, -1, d))  # [B, T, d]
    masks = torch.arange(T).unsqueeze(0) < torch.arange(T + 1).unsqueeze(1)  # [T+1, T]
    Xs = (X.unsqueeze(0) * masks[:, None, :, None]).flatten(0, 1)
    rs = (state.rewards.unsqueeze(0) * masks[:, None, :]).flatten(0, 1)
    feats = env.features.unsqueeze(0).expand(T + 1, -1, -1, -1).flatten(0, 1)
    return (feats, Xs, rs), torch.stack(refs)


class SoftLinUCBCheck(Check):
    """Fresh linear bandits (a ~ U[−1, 1]^d) played by soft LinUCB; the construction's
    log-probabilities after every history length t = 0..T against the policy's. Criterion: the
    stated bound (`logprob_bound`, max over histories), as a relative error of the K-vector."""

    task = None
    defaults = {"steps": 20, "dim": 5, "n_problems": 50}
    condition_numbers = (1,)

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        if task_params.get("condition_number", 1) != 1 or n_context is not None:
            raise InputError("soft_linucb's histories have no condition number or context size: "
                             "set steps (the horizon T) instead.")  # fmt: skip
        return _histories(info, n_problems, generator)

    def reference(self, info, problems):
        return problems[1]

    def model_steps(self, model, fmt, problems, dtype):
        (feats, X, r), ref = problems
        with torch.no_grad():  # `model` is already in `dtype` (verify converts a copy)
            out = model(*(x.to(dtype) for x in (feats, X, r)))
        return out.view(ref.shape)

    def criterion(self, run):
        model = run.model
        (feats, X, r), ref = run.problems[0]
        absolute = model.logprob_bound(feats, X, r).view(ref.shape[:2])  # [T+1, B]
        rel = absolute * math.sqrt(ref.shape[-1]) / ref.norm(dim=-1)
        bound = float(rel.max())
        return Criterion(bound, f"stated bound: |Δ log p| <= 2δ per history (module docstring), "
                                f"as a relative error <= {bound:.2e}")  # fmt: skip


@CONSTRUCTIONS.register("soft_linucb", check=SoftLinUCBCheck)
def soft_linucb(dim: int = 5, steps: int = 20, n_actions: int = 10, ridge: float = 1.0,
                alpha: float = 2.0, temperature: float = 0.1, width: int = 256,
                solver_steps: int | None = None, norm_bound: float | None = None):  # fmt: skip
    """Soft LinUCB's log-probabilities for histories of up to `steps` = T decisions (module
    docstring: what is weights and what is unrolled). dim d ≤ 5, n_actions K ≤ 10, T ≤ 50.
    ridge λ, alpha α, temperature τ: the policy's (defaults 1, 2, 0.1). width W: √'s ReLU units
    (default 256). solver_steps k: Nesterov steps (default: the fewest with solver error ≤ 1e-10).
    norm_bound B_a ≥ ‖a_k‖ (default √d: actions in [−1, 1]^d)."""
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
    L = lam + T * Ba**2
    k = solver_steps
    if k is None:  # the smallest k with solver_error <= 1e-10
        k = math.ceil(2 * math.log(math.sqrt((L + lam) / lam) / 1e-10) / -math.log1p(
            -math.sqrt(lam / L)))  # fmt: skip
    V.positive_int("solver_steps", k)
    model = SoftLinUCBModel(d, K, T, lam, alpha, tau, W, k, Ba)
    model.construction = ConstructionInfo(
        name="soft_linucb", citation=LIN, algorithm="soft_linucb",
        hyperparameters={"n_actions": K, "ridge": lam, "alpha": alpha, "temperature": tau},
        steps=T, dim=d, layers=k + 3, heads=2 * (K + 1), width=d * (K + 2) + K + 2,
        head_dim=d, layers_per_step=0,
        formulas={
            "layers": "k + 3 (k Nesterov steps, q, √ MLP, logits): unrolled, not weights",
            "heads": "2(K + 1) ReLU heads per solver layer (not written here)",
            "sqrt_mlp_hidden": W + 1, "solver_steps": k, "L": L, "q_max": Ba**2 / lam,
            "weights": "only the √ MLP; the solver and read-out are tensor operations",
        },
    )  # fmt: skip
    return model.eval(), BanditPrompts(K)


def error_table(widths=(16, 32, 64, 128), solver_steps=(16, 64, 256), n_problems=100, seed=0,
                **params) -> dict:  # fmt: skip
    """Largest |Δ log p| against soft LinUCB for every width W (k default) and every k (W = 1024)
    on the same histories: the interpolation term falls ~×2 per doubling of W, the solver term
    geometrically in k."""
    base, _ = soft_linucb(**params)
    info = info_of(base)
    (feats, X, r), ref = _histories(info, n_problems, torch.Generator().manual_seed(seed))

    def err(model):
        with torch.no_grad():
            return float((model(feats, X, r).view(ref.shape) - ref).abs().max())

    return {
        "width": {W: err(soft_linucb(**params, width=W)[0]) for W in widths},
        "solver_steps": {k: err(soft_linucb(**params, width=1024, solver_steps=k)[0])
                         for k in solver_steps},
    }  # fmt: skip
