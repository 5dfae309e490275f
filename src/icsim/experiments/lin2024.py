"""Lin, Bai, Mei, ICLR 2024, "Transformers as decision makers: provable in-context reinforcement
learning via supervised pretraining" (PAPERS.md §5): a transformer trained offline on bandit
histories acts online. On linear bandits, trained by Algorithm Distillation on LinUCB's own
histories, it tracks LinUCB and beats Thompson sampling and the empirical mean; on Bernoulli
bandits, trained on histories from ½ uniform + ½ Thompson sampling labelled by Thompson sampling,
it tracks Thompson sampling, and a larger uniform share (9:1) hurts.

Every policy, the trained models included, plays the same fresh environments with the same
reward noise (`play_all`); the metric is the cumulative expected (noise-free) regret, mean ± s.e.
over environments. The training data are a fixed set of histories (their code: 80k
environments), collected batched, from which every step draws a batch. The report
(`lin2024.md`) is a pure function of the config and the scalars.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import icsim.environments as E
from icsim import _validate as V
from icsim.analysis.plots import plot_curves
from icsim.analysis.report import Comparison, Curve, Finding, fill_beside, fmt, judge_all
from icsim.environments.policies import get as policy
from icsim.environments.rollout import play_all, rollout
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.models import ModelConfig, build
from icsim.models.bandit_format import BanditTokens, History, TransformerPolicy, collect
from icsim.training.settings import TransformerSettings

LINEAR_BASELINES = ("linucb", "thompson", "empirical_mean", "greedy", "uniform")
BERNOULLI_BASELINES = ("bernoulli_thompson", "bernoulli_ucb", "empirical_mean", "uniform")


@dataclass(frozen=True, kw_only=True)
class ModelSettings(TransformerSettings):
    """The transformer (their code: 8 layers, width 32, MLP hidden 32, ReLU attention divided by
    the number of visible tokens; 4 heads, all used here) and its training (AdamW 1e-3, weight
    decay 1e-4, batch 128). The other fields are `TransformerSettings`'."""

    n_layer: int = 8
    n_head: int = 4
    n_embd: int = 32
    mlp_hidden: int = 32
    attention: str = "relu"
    steps: int = 100_000
    batch_size: int = 128
    log_every: int = 500
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def __post_init__(self):
        V.positive_int("mlp_hidden", self.mlp_hidden)
        super().__post_init__()


@dataclass(frozen=True)
class LinConfig:
    """Bandits, data and evaluation. `ratios` are the uniform : Thompson-sampling shares of the
    Bernoulli training histories (the first trains the main Bernoulli model)."""

    model: ModelSettings
    dim: int = 5
    n_actions: int = 10
    horizon: int = 200
    noise_std: float = 1.5
    arms: int = 5
    bernoulli_horizon: int = 200
    train_envs: int = 80_000
    ratios: tuple[float, ...] = (1.0, 9.0)
    dpt: bool = True  # also train on the same histories labelled with the optimal action
    temperature: float = 0.1  # soft LinUCB's τ for the action-distribution probe
    probe_histories: int = 2048  # fresh LinUCB histories to fit (and, as many, to test) probes
    eval_envs: int = 500
    eval_horizon: int | None = None  # online steps evaluated (None: the training horizon)
    eval_seed: int = 12345
    data_seed: int = 1
    # the soft LinUCB construction (d, K as above; needs d <= 5, K <= 10): its error against
    # width W (√ units per action) and depth k (Nesterov steps) on histories of this length
    construction_steps: int = 20
    construction_widths: tuple[int, ...] = (16, 32, 64, 128)
    construction_solver_steps: tuple[int, ...] = (16, 32, 64, 128)
    construction_histories: int = 20

    def __post_init__(self):
        V.positive_int("train_envs", self.train_envs)
        V.positive_int("eval_envs", self.eval_envs)
        if self.eval_envs < 2:
            raise V.InputError("eval_envs must be >= 2 (a standard error needs two), got 1.")
        if not self.ratios:
            raise V.InputError("ratios must name at least one uniform : Thompson ratio.")
        for r in self.ratios:
            V.number("ratio", r, low=0)
        if (self.construction_widths or self.construction_solver_steps) and (
            self.dim > 5 or self.n_actions > 10
        ):
            raise V.InputError(
                f"the soft LinUCB construction is built for dim <= 5 and n_actions <= 10, got "
                f"{self.dim} and {self.n_actions}; set construction_widths=() and "
                "construction_solver_steps=() to skip it."
            )
        if self.eval_horizon is not None:
            V.positive_int("eval_horizon", self.eval_horizon)
            if self.eval_horizon > min(self.horizon, self.bernoulli_horizon):
                raise V.InputError(
                    f"eval_horizon={self.eval_horizon} exceeds the training horizon; set it to "
                    f"at most {min(self.horizon, self.bernoulli_horizon)} or None."
                )


PROFILES = {
    # The paper: d = 5, K = 10, T = 200, 80k training histories, 8 layers / 4 heads / width 32,
    # batch 128, AdamW 1e-3 (they train ~1.25M steps; 100k here), Bernoulli K = 5.
    "full": LinConfig(model=ModelSettings(amp=True)),
    # 2 CPU cores: d = 2, K = 5, T = 30, a 4-layer model, 20k histories, 1000 steps per model
    # (four models: AD, DPT, Bernoulli 1:1 and 9:1).
    "quick": LinConfig(
        model=ModelSettings(n_layer=4, steps=1000, batch_size=64, log_every=100, lr=2e-3),
        dim=2,
        n_actions=5,
        horizon=30,
        arms=5,
        bernoulli_horizon=30,
        train_envs=20_000,
        eval_envs=400,
    ),  # fmt: skip
}

PAPER = {
    "numbers": "none as text: the paper's regret figures give no values",
    "linear": "the AD transformer tracks LinUCB and beats Thompson sampling and the empirical mean",
    "bernoulli": "trained with Thompson sampling as expert, the transformer tracks it",
    "ratio": "a larger distribution ratio (9:1 uniform : TS) hurts",
}


def train(cfg: LinConfig, data: History, fmt: BanditTokens, run_dir: Path, device, quiet):
    """Train a transformer on `data` (cross-entropy of the labels over the K actions at every
    step) through the one `Trainer`; returns the model in eval mode."""
    from icsim.training import Trainer, losses

    ms = cfg.model
    mc = ModelConfig(
        n_dims_in=fmt.width, n_dims_out=fmt.n_actions, n_layer=ms.n_layer, n_head=ms.n_head,
        n_embd=ms.n_embd, mlp_hidden=ms.mlp_hidden, attention=ms.attention,
        max_positions=2 * data.n_points,
    )  # fmt: skip
    torch.manual_seed(ms.seed)
    model = build("transformer", mc).to(device)
    n = data.actions.shape[0]

    def sample(step, rng):
        idx = torch.randint(n, (ms.batch_size,), generator=rng.device, device=device)
        return History(*(x[idx] for x in data))

    trainer = Trainer(
        model, fmt, sample=sample, loss=losses.cross_entropy_every_prefix(fmt),
        optim=ms.optim(), device=device, seeds=(ms.seed,), amp=ms.amp, compile=ms.compile,
        run=ms.run(run_dir, checkpoint_every=min(ms.steps, 10_000), quiet=quiet, overwrite=True),
        record=lambda k: {"model_kind": "transformer", "model_config": mc.to_dict(),
                          "lin2024": asdict(ms)},
    )  # fmt: skip
    trainer.train()
    return model.eval(), trainer.history


#: band edges within this fraction of the mean are rounding residue of an exact 0
ROUNDING = 1e-12


def regret_curve(cum: torch.Tensor) -> dict:
    """Mean cumulative regret per step with a ± 1 standard error band over environments. The
    lower edge mean − s.e. is exactly 0 when one environment of two has regret 0 (mean = s.e.),
    but comes out as ±1e-17; edges within `ROUNDING` × the mean are set to 0, so a log axis is
    not stretched down to the residue."""
    cum = cum.double()
    mean, se = cum.mean(0), cum.std(0) / math.sqrt(cum.shape[0])
    low = mean - se
    low = torch.where(low.abs() <= ROUNDING * mean.abs(), 0.0, low)
    x = list(range(1, cum.shape[1] + 1))
    return Curve(x, mean.tolist(), "step t", "cumulative regret", low.tolist(),
                 (mean + se).tolist()).to_json()  # fmt: skip


def evaluate(env, baselines: dict, models: dict, fmt, cfg, prefix, probe=None):
    """Curves `{prefix}regret_{name}` of every baseline and model on the same environments and
    noise; with `probe`, the total variation between each model's action distribution and the
    probe policy's on the model's own history, per step."""
    curves, gen = {}, torch.Generator(device=env.features.device)
    T = cfg.eval_horizon
    runs = play_all(env, baselines, T, seed=cfg.eval_seed)
    for name, m in models.items():
        pol = TransformerPolicy(m, fmt)
        runs[name] = rollout(env, pol, T, gen.manual_seed(cfg.eval_seed), expert=probe)
        if probe is not None:
            tv = 0.5 * (runs[name].probs - runs[name].expert_probs).abs().sum(-1)
            curves[f"tv_{name}_soft_linucb"] = regret_curve(tv) | {"y_label": "total variation"}
            curves[f"tv_{name}_soft_linucb"]["x_label"] = "step t"
    for name, r in runs.items():
        curves[f"{prefix}regret_{name.removeprefix('bernoulli_')}"] = regret_curve(
            r.cumulative_regret()
        )
    return curves


def construction_curves(cfg: LinConfig) -> dict:
    """The soft LinUCB construction (Thm 8's route; `icsim.constructions.soft_linucb`) against
    the policy on fresh histories: the largest |Δ log p| and its stated bound against the width
    W and against the depth k (`error_table`), as curves `construction_{error,bound}_{width,
    depth}`."""
    from icsim.constructions.soft_linucb import error_table

    t = error_table(cfg.construction_widths, cfg.construction_solver_steps,
                    cfg.construction_histories, seed=cfg.eval_seed, dim=cfg.dim,
                    n_actions=cfg.n_actions, steps=cfg.construction_steps,
                    temperature=cfg.temperature)  # fmt: skip
    curves = {}
    for key, name, x_label in (("width", "width", "√ units per action W"),
                               ("solver_steps", "depth", "Nesterov steps k (layers)")):  # fmt: skip
        if t[key]:
            xs, pairs = list(t[key]), list(t[key].values())
            for i, what in enumerate(("error", "bound")):
                curves[f"construction_{what}_{name}"] = Curve(
                    xs, [p[i] for p in pairs], x_label, "largest |Δ log p| vs soft LinUCB"
                ).to_json()
    return curves


@EXPERIMENTS.register("lin2024-decision-makers")
class Lin2024(Experiment):
    """Transformers as decision makers: in-context bandits (Lin, Bai, Mei 2024)

    Lin, Bai, Mei, *Transformers as Decision Makers: Provable In-Context Reinforcement Learning via
    Supervised Pretraining*, ICLR 2024"""

    cost = {
        "quick": "~7 min on 2 CPU cores (414 s measured, 2026-12-02)",
        "full": "a GPU: 80k histories, T = 200, 100k steps per model (not yet measured)",
    }
    profiles = PROFILES

    def run(self, cfg: LinConfig, out: Path, device: str, quiet: bool) -> Result:
        dev = torch.device(device)

        def gen(seed):
            return torch.Generator(device=dev).manual_seed(seed)

        lin = E.get("linear_bandit", dim=cfg.dim, n_actions=cfg.n_actions, horizon=cfg.horizon,
                    noise_std=cfg.noise_std)  # fmt: skip
        fmt_lin = BanditTokens(cfg.n_actions, cfg.dim)
        linucb, history = policy("linucb"), {}
        models = {}
        for labels in ("behaviour", "optimal") if cfg.dpt else ("behaviour",):
            data = collect(lin.sample(cfg.train_envs, generator=gen(cfg.data_seed), device=dev),
                           [(linucb, 1.0)], labels, generator=gen(cfg.data_seed))  # fmt: skip
            name = "transformer" if labels == "behaviour" else "dpt"
            models[name], history[name] = train(cfg, data, fmt_lin, out / f"train_{name}", dev,
                                                quiet)  # fmt: skip
        env = lin.sample(cfg.eval_envs, generator=gen(cfg.eval_seed), device=dev)
        probe = policy("soft_linucb", temperature=cfg.temperature)
        curves = evaluate(env, {n: policy(n) for n in LINEAR_BASELINES}, models, fmt_lin, cfg,
                          "", probe)  # fmt: skip

        curves["probe_ridge_r2"] = ridge_probe(models["transformer"], fmt_lin, lin, cfg, gen)
        bern = E.get("bernoulli_bandit", n_actions=cfg.arms, horizon=cfg.bernoulli_horizon)
        fmt_b, ts, b_models = BanditTokens(cfg.arms, cfg.arms), policy("bernoulli_thompson"), {}
        for i, ratio in enumerate(cfg.ratios):
            data = collect(bern.sample(cfg.train_envs, generator=gen(cfg.data_seed), device=dev),
                           [(policy("uniform"), ratio), (ts, 1.0)], "expert", ts,
                           gen(cfg.data_seed))  # fmt: skip
            name = "transformer" if i == 0 else f"transformer_ratio_{ratio:g}"
            b_models[name], history[f"bernoulli_{name}"] = train(
                cfg, data, fmt_b, out / f"train_bernoulli_{i}", dev, quiet
            )
        env_b = bern.sample(cfg.eval_envs, generator=gen(cfg.eval_seed), device=dev)
        b_base = {n: policy(n) for n in BERNOULLI_BASELINES}
        curves |= evaluate(env_b, b_base, b_models, fmt_b, cfg, "bernoulli_")
        for name, rows in history.items():
            curves[f"loss_{name}"] = Curve.of_training(rows, "cross-entropy").to_json()
        curves |= construction_curves(cfg)
        figs = [
            plot_curves({k: c for k, c in curves.items() if k.endswith(f"_{axis}")},
                        out / f"construction_{axis}.png", logy=True,
                        title=f"soft LinUCB construction: error against {axis}")
            for axis in ("width", "depth") if f"construction_error_{axis}" in curves
        ] + [
            plot_curves({k: c for k, c in curves.items() if k.startswith("regret_")},
                        out / "regret_linear.png", title="linear bandit"),
            plot_curves({k: c for k, c in curves.items() if k.startswith("bernoulli_regret_")},
                        out / "regret_bernoulli.png", title="Bernoulli bandit"),
        ]  # fmt: skip
        scalars = summarise(curves, cfg)
        return Result(curves, scalars, PAPER, figs, *report(cfg, scalars))

    # `--profile full --smoke`: training and evaluation sizes cut; the models and the training
    # histories keep their shapes (T = 200), the online evaluation plays 10 steps (the model's
    # T forward passes of up to 2T tokens each would otherwise dominate).
    smoke = {
        "train_envs": 8, "eval_envs": 2, "eval_horizon": 10, "probe_histories": 8,
        "construction_steps": 3, "construction_widths": (), "construction_solver_steps": (4, 8),
        "construction_histories": 2,
    }  # fmt: skip


class _LinUCBHistories:
    """Histories of a bandit family played by LinUCB, as a task `fit_probes` can sample."""

    def __init__(self, family):
        self.family = family

    def sample(self, n, n_points, *, generator, device):
        env = self.family.sample(n, generator=generator, device=device)
        return collect(env, [(policy("linucb"), 1.0)], generator=generator)


def ridge_estimates(h: History, lam: float = 1.0) -> torch.Tensor:
    """ŵ_t = (λI + Σ_{s<t} a_s a_sᵀ)⁻¹ Σ_{s<t} a_s r_s at every decision t: [B, T, d]."""
    a = h.features.gather(1, h.actions.unsqueeze(-1).expand(-1, -1, h.features.shape[-1]))
    gram = (a.unsqueeze(-1) * a.unsqueeze(-2)).cumsum(1) - a.unsqueeze(-1) * a.unsqueeze(-2)
    xty = (a * h.rewards.unsqueeze(-1)).cumsum(1) - a * h.rewards.unsqueeze(-1)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(gram.double() + lam * eye, xty.double().unsqueeze(-1)).squeeze(-1)


def ridge_probe(model, fmt, family, cfg: LinConfig, gen) -> dict:
    """R² per layer of a linear read-out of the hidden state at each decision token predicting
    the ridge estimate ŵ_t (one probe per coordinate, fitted on fresh LinUCB histories, scored
    on others; averaged over coordinates): does the model hold LinUCB's estimate, and where?"""
    from icsim.analysis.metrics import pooled_r2
    from icsim.analysis.probes import fit_probes, hidden_at_predictions

    task, dev = _LinUCBHistories(family), next(model.parameters()).device
    test = task.sample(cfg.probe_histories, 0, generator=gen(cfg.eval_seed + 1), device=dev)
    hidden, target = hidden_at_predictions(model, fmt, test), ridge_estimates(test)
    r2 = torch.zeros(hidden.shape[0], dtype=torch.float64)
    for j in range(cfg.dim):
        probes = fit_probes(
            model, fmt, task, n_prompts=cfg.probe_histories, n_points=cfg.horizon,
            generator=gen(cfg.data_seed + 1), device=dev,
            target=lambda b, j=j: ridge_estimates(b)[..., j],
        )  # fmt: skip
        pred = probes.predict(hidden)
        r2 += torch.tensor([pooled_r2(p.reshape(-1), target[..., j].reshape(-1)) for p in pred])
    y = (r2 / cfg.dim).tolist()
    return Curve(list(range(len(y))), y, "layer", "R² of ŵ_t (ridge, λ = 1)").to_json()


def summarise(curves: dict, cfg: LinConfig) -> dict:
    """Final cumulative regret (mean, s.e.) of every curve, the probe's mean TV and the flags."""
    s = {"dim": cfg.dim, "n_actions": cfg.n_actions, "horizon": cfg.horizon, "arms": cfg.arms}
    for name, c in curves.items():
        if "regret_" in name:
            s[f"{name}_at_T"] = c["y"][-1]
            s[f"{name}_se_at_T"] = c["y"][-1] - c["y_low"][-1]
        elif name.startswith("tv_"):
            s[f"{name}_mean"] = sum(c["y"]) / len(c["y"])
    for axis in ("width", "depth"):
        if f"construction_error_{axis}" in curves:
            err, bound = (curves[f"construction_{w}_{axis}"]["y"] for w in ("error", "bound"))
            s[f"construction_error_at_largest_{axis}"] = err[-1]
            s[f"construction_within_bound_{axis}"] = float(all(map(float.__le__, err, bound)))
    r2 = curves["probe_ridge_r2"]["y"]
    s["probe_ridge_r2_last_layer"], s["probe_ridge_r2_best"] = r2[-1], max(r2)
    tf = s["regret_transformer_at_T"]
    s["transformer_below_thompson_and_empirical_mean"] = float(
        tf < s["regret_thompson_at_T"] and tf < s["regret_empirical_mean_at_T"]
    )
    if len(cfg.ratios) > 1:
        s["ratio_hurts"] = float(
            s[f"bernoulli_regret_transformer_ratio_{cfg.ratios[-1]:g}_at_T"]
            > s["bernoulli_regret_transformer_at_T"]
        )
    return s


FINDINGS = [
    Finding.flag(
        "beats_thompson_and_empirical_mean",
        "on the linear bandit the AD-trained transformer beats Thompson sampling and the "
        "empirical mean",
        "the transformer's mean cumulative regret at T below both of theirs",
        "transformer_below_thompson_and_empirical_mean",
        measured=lambda s: (
            f"at T: transformer {fmt(s['regret_transformer_at_T'])}, Thompson "
            f"{fmt(s['regret_thompson_at_T'])}, empirical mean "
            f"{fmt(s['regret_empirical_mean_at_T'])}"
        ),
    ),
    Finding(
        "tracks_linucb",
        "on the linear bandit the AD-trained transformer tracks LinUCB",
        "transformer's cumulative regret at T at most 1.25 × LinUCB's",
        lambda s: s["regret_transformer_at_T"] <= 1.25 * s["regret_linucb_at_T"],
        lambda s: f"{fmt(s['regret_transformer_at_T'])} against {fmt(s['regret_linucb_at_T'])}",
        needs=("regret_transformer_at_T", "regret_linucb_at_T"),
    ),
    Finding(
        "tracks_thompson_bernoulli",
        "on the Bernoulli bandit the transformer trained with Thompson sampling as expert "
        "tracks Thompson sampling",
        "transformer's cumulative regret at T within 25% of Thompson sampling's",
        lambda s: (
            abs(s["bernoulli_regret_transformer_at_T"] - s["bernoulli_regret_thompson_at_T"])
            <= 0.25 * s["bernoulli_regret_thompson_at_T"]
        ),
        lambda s: (
            f"{fmt(s['bernoulli_regret_transformer_at_T'])} against "
            f"{fmt(s['bernoulli_regret_thompson_at_T'])}"
        ),
        needs=("bernoulli_regret_transformer_at_T", "bernoulli_regret_thompson_at_T"),
    ),
    Finding.flag(
        "larger_ratio_hurts",
        "a larger distribution ratio (more uniform context, 9:1) hurts",
        "the 9:1 model's cumulative regret at T above the 1:1 model's",
        "ratio_hurts",
        needs=("ratio_hurts",),
    ),
]


def report(cfg: LinConfig, scalars: dict):
    """(comparison rows, verdicts, prose): a pure function of the config and the numbers."""
    T, Tb = cfg.eval_horizon or cfg.horizon, cfg.eval_horizon or cfg.bernoulli_horizon
    rows = [
        Comparison(f"cumulative regret at T = {T}, {n} (linear)", f"regret_{n}_at_T",
                   PAPER["linear"] if n == "transformer" else "in the figure only")
        for n in ("transformer", "dpt", *LINEAR_BASELINES)
    ] + [
        Comparison(f"cumulative regret at T = {Tb}, {n} (Bernoulli)",
                   f"bernoulli_regret_{n}_at_T", "in the figure only")
        for n in ("transformer", *(f"transformer_ratio_{r:g}" for r in cfg.ratios[1:]),
                  "thompson", "ucb", "empirical_mean", "uniform")
    ] + [
        Comparison("mean total variation, transformer vs soft LinUCB (per step)",
                   "tv_transformer_soft_linucb_mean", "Thm: AD imitates the expert"),
        Comparison("R² of the ridge estimate ŵ_t read linearly from the last layer",
                   "probe_ridge_r2_last_layer", "Thm 8: the construction computes ŵ_t"),
        Comparison("best R² of ŵ_t over layers", "probe_ridge_r2_best", "not measured"),
        Comparison("soft LinUCB construction: largest abs. error of log p at the widest W",
                   "construction_error_at_largest_width", "Thm 8: ε-close, no numbers"),
        Comparison("soft LinUCB construction: largest abs. error of log p at the deepest k",
                   "construction_error_at_largest_depth", "Thm 8: Õ(√T) layers, no numbers"),
        Comparison("construction within its stated bound at every W (1 = yes)",
                   "construction_within_bound_width", "not stated"),
        Comparison("construction within its stated bound at every k (1 = yes)",
                   "construction_within_bound_depth", "not stated"),
    ]  # fmt: skip
    verdicts = judge_all(FINDINGS, scalars)
    ms = cfg.model
    ctx = {
        "steps": ms.steps, "n_layer": ms.n_layer, "n_head": ms.n_head, "n_embd": ms.n_embd,
        "batch_size": ms.batch_size, "attention": ms.attention, "train_envs": cfg.train_envs,
        "eval_envs": cfg.eval_envs, "noise_std": cfg.noise_std, "temperature": cfg.temperature,
        "bernoulli_horizon": cfg.bernoulli_horizon, "construction_steps": cfg.construction_steps,
    }  # fmt: skip
    unmeasured = {f"construction_{w}_{axis}": "not measured" for axis in ("width", "depth")
                  for w in ("error_at_largest", "within_bound")}  # fmt: skip
    return (
        rows,
        list(verdicts.values()),
        fill_beside(__file__, {**unmeasured, **scalars, **ctx}, verdicts),
    )
