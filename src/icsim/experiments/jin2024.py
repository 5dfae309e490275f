"""Jin, Balasubramanian, Lai 2024 (arXiv 2410.14183), "Provable in-context learning for mixture
of linear regressions using transformers", with the per-prompt variant of Pathak, Sen, Kong, Das
(ICLR 2024) (PAPERS.md §6).

Per sample (the symmetric two-component mixture β₂ = −β₁ = −β*, π = ½, x ~ N(0, I_d)): the Bayes
prediction of a new y is 0, so raw MSE says nothing; the transformer (ReLU attention, no
positional embedding, one query token) is trained through `Trainer` to output β̂ with the
sign-invariant loss min_s ‖β̂ − sβ*‖²/d, and scored like EM, gradient EM and the label oracle by
the error up to sign ‖β̂ ∓ β*‖ against n at a low and a high SNR (theory: slopes −1/4 and −1/2 on
log–log axes), by the label-aware predictor x_qᵀβ̂_{z_q}, by its spread over training seeds beside
EM's over random initialisations, and per layer through ridge probes of the hidden state
(`icsim.analysis.probes`) matched against gradient-EM steps. Per prompt (m fixed vectors): a
transformer trained on MSE at every prefix, scored by its excess MSE over the posterior mean.
The report (`jin2024.md`) is a pure function of the config and the scalars.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

import icsim
from icsim import _validate as V
from icsim.algorithms.mixture_em import (
    align_sign,
    error_up_to_sign,
    label_aware_predictions,
    mixture_problem,
)
from icsim.analysis.evaluation import algorithm_prefix_predictions, model_prefix_predictions
from icsim.analysis.matching import fit_line
from icsim.analysis.metrics import matched_steps
from icsim.analysis.probes import hidden_at_predictions
from icsim.analysis.report import Curve
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.experiments.jin2024_findings import METHODS, PAPER, REGIMES, figures, report
from icsim.models import ModelConfig, build
from icsim.models.formats import Interleaved, Stacked
from icsim.training import Trainer, losses
from icsim.training.settings import RunSettings


@dataclass(frozen=True, kw_only=True)
class TrainSettings(RunSettings):
    """A transformer and its training run (the other fields are `RunSettings`')."""

    n_layer: int = 6
    n_head: int = 4
    steps: int = 20_000
    seeds: tuple[int, ...] = (0, 1, 2)  # trained together (vmapped); their spread is measured

    def __post_init__(self):
        V.positive_fields(self, "n_layer", "n_head")
        if not self.seeds:
            raise V.InputError("seeds must name at least one training seed, e.g. (0,).")
        super().__post_init__()


@dataclass(frozen=True)
class PerPromptConfig:
    """Pathak et al. 2024: m fixed vectors, one per prompt; a GPT-style model on interleaved
    tokens trained on MSE at every prefix."""

    train: TrainSettings
    n_components: int = 5
    noise_std: float = 1.0
    n_points: int = 20
    n_embd: int = 64
    attention: str = "softmax"


@dataclass(frozen=True)
class JinConfig:
    train: TrainSettings
    dim: int = 5
    noise_std: float = 1.0
    snrs: tuple[float, float] = (1.0, 4.0)  # (low, high) ‖β*‖/σ
    n_values: tuple[int, ...] = (10, 20, 40, 80)  # context lengths evaluated (training: n in range)
    widths: tuple[int, ...] = (64,)
    attention: str = "relu"
    em_steps: int = 20
    # α = 1 diverges at n ≈ 2d (λ_max(XᵀX/n) ≈ (1 + √(d/n))² > 2); ½ is stable for n >= d
    gradient_em_step_size: float = 0.5
    gradient_em_inner_steps: int = 1
    init_seeds: int = 8  # EM's random initialisations
    probe_prompts: int = 2048
    probe_ridge: float = 1e-4  # λ of the per-layer ridge probes, × the number of prompts
    eval_prompts: int = 1024
    eval_seed: int = 12345
    per_prompt: PerPromptConfig | None = field(
        default_factory=lambda: PerPromptConfig(TrainSettings(steps=2000, seeds=(0,)))
    )

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        if len(self.snrs) != 2 or not all(V.number("snrs", s, low=0) >= 0 for s in self.snrs):
            raise V.InputError(f"snrs must be (low, high), two numbers >= 0, got {self.snrs!r}.")
        if len(self.n_values) < 2 or min(self.n_values) <= self.dim:
            raise V.InputError(
                f"n_values must hold >= 2 context lengths, each > dim={self.dim} (EM's M-step "
                f"needs n > d), got {self.n_values!r}."
            )


# Pathak et al.'s model size is not available as text: 8 layers of width 128 (a quarter of Garg
# et al.'s GPT-2's parameters per layer, which also keeps `--profile full --smoke` within budget).
_PP_FULL = PerPromptConfig(
    TrainSettings(n_layer=8, n_head=4, steps=200_000, lr=1e-4, log_every=500, seeds=(0,)),
    n_components=20, n_points=40, n_embd=128,
)  # fmt: skip
PROFILES = {
    # The papers' sizes where known (ReLU attention, widths 32/64/128; Pathak: m = 20, prompts
    # of 40 of their up to ~60 points); d, the n grid and the training budget are not
    # available as text (PAPERS.md §6).
    "full": JinConfig(
        train=TrainSettings(n_layer=6, n_head=4, steps=50_000, lr=1e-4, log_every=500),
        dim=10, n_values=(20, 40, 80, 160), widths=(32, 64, 128), init_seeds=20,
        probe_prompts=8192, eval_prompts=2048, per_prompt=_PP_FULL,
    ),
    # 2 CPU cores, minutes: d = 3, n ≤ 32, 4-layer 64-wide models (two seeds per SNR). At
    # d = 5 (n ≤ 40, 800 steps of 32 prompts) the models stayed near the constant β̂ that
    # scores ≈ 0.9; d = 3 and 1200 steps of 128 prompts at lr 2e-3 is what learns in minutes
    # (quick run: error 0.25 at n = 32, high SNR, against EM's 0.10, slope −0.61; 3 of 5
    # findings hold, against 2 at d = 5).
    "quick": JinConfig(
        train=TrainSettings(n_layer=4, steps=1200, batch_size=128, lr=2e-3, warmup_steps=50,
                            schedule="cosine", seeds=(0, 1)),
        dim=3, n_values=(8, 16, 32),
        per_prompt=PerPromptConfig(
            TrainSettings(n_layer=4, steps=800, batch_size=32, lr=1e-3, warmup_steps=50,
                          schedule="cosine", seeds=(0,)),
        ),
    ),
}  # fmt: skip

# -- training --------------------------------------------------------------------------------


def sign_invariant_beta_loss(fmt):
    """min_s ‖β̂ − sβ*‖²/d at the query token (the symmetric mixture fixes β* up to sign)."""

    def loss(forward, batch):
        pred, beta = fmt.run(forward, batch)[:, 0].float(), batch.w_star.float()
        err = torch.minimum((pred - beta).square().mean(-1), (pred + beta).square().mean(-1))
        return err.mean()

    return loss


def train_models(ts: TrainSettings, mc: ModelConfig, fmt, sample, loss, run_dir, device, quiet):
    """One model per seed of `ts`, trained together by the one `Trainer`; returns the models."""
    models = []
    for s in ts.seeds:
        torch.manual_seed(s)
        models.append(build("transformer", mc).to(device))
    trainer = Trainer(
        models if len(models) > 1 else models[0], fmt, sample=sample, loss=loss,
        optim=ts.optim(), seeds=ts.seeds, device=device,
        run=ts.run(run_dir, quiet=quiet, overwrite=True),
        record=lambda k: {"model_kind": "transformer", "model_config": mc.to_dict(),
                          "jin2024": asdict(ts)},
    )  # fmt: skip
    trainer.train()
    return [m.eval() for m in trainer.models()]


def train_per_sample(cfg: JinConfig, task, width: int, run_dir, device, quiet):
    """Models that read the prompt's pairs and output β̂ at one query token; the context length
    is drawn every step from [min n, max n] as a function of the step (so every seed's batch has
    the same shape, and a resumed run draws the same lengths)."""
    fmt = Stacked(dim=cfg.dim)
    mc = ModelConfig(n_dims_in=fmt.width, n_dims_out=cfg.dim, n_layer=cfg.train.n_layer,
                     n_head=cfg.train.n_head, n_embd=width, attention=cfg.attention,
                     positional=False)  # fmt: skip
    lo, hi = min(cfg.n_values), max(cfg.n_values)

    def sample(step, rng):
        g = torch.Generator(device="cpu").manual_seed(step)
        n = int(torch.randint(lo, hi + 1, (1,), generator=g))
        return task.sample(cfg.train.batch_size, n + 1, generator=rng.device, device=device)

    loss = sign_invariant_beta_loss(fmt)
    return train_models(cfg.train, mc, fmt, sample, loss, run_dir, device, quiet), fmt


# -- the per-sample measures -------------------------------------------------------------------


def with_context(batch, n: int):
    """The first n pairs as context and the batch's last pair as the query."""
    idx = torch.cat([torch.arange(n), torch.tensor([batch.n_points - 1])]).to(batch.xs.device)
    truth = dict(batch.truth, labels=batch.labels[:, idx])
    return replace(batch, xs=batch.xs[:, idx], ys=batch.ys[:, idx], truth=truth)


@torch.no_grad()
def estimates(cfg: JinConfig, models, fmt, batch, n: int, sigma: float) -> dict:
    """β̂ [B, d] of every method (the transformer: per seed [S, B, d]) from n context pairs."""
    b = with_context(batch, n)
    get = icsim.algorithms.get
    em_kw = dict(noise_std=sigma, initialization="spectral")
    gem = get("symmetric_gradient_em", step_size=cfg.gradient_em_step_size,
              inner_steps=cfg.gradient_em_inner_steps, **em_kw)  # fmt: skip
    return {
        "transformer": torch.stack([fmt.run(m, b)[:, 0].double() for m in models]),
        "em": get("symmetric_em", **em_kw).run(b, cfg.em_steps).iterates[-1],
        "gradient_em": gem.run(b, cfg.em_steps).iterates[-1],
        "oracle": get("mixture_oracle").run(b).iterates[0, :, 0],
        "least_squares": get("least_squares").run(b).iterates[0],
        "em_random": torch.stack([
            get("symmetric_em", noise_std=sigma, seed=s).run(b, cfg.em_steps).iterates[-1]
            for s in range(cfg.init_seeds)
        ]),
    }  # fmt: skip


def per_sample_stage(cfg: JinConfig, regime: str, snr: float, out: Path, device, quiet):
    """(curves, scalars) of one SNR: error against n of every method, spreads, label-aware MSE,
    per-layer probes of the widest model."""
    sigma = cfg.noise_std
    task = icsim.tasks.get("mixture_linear_regression", dim=cfg.dim, snr=snr, noise_std=sigma)
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed)
    batch = task.sample(cfg.eval_prompts, max(cfg.n_values) + 1, generator=g, device=device)
    curves, scalars, by_width = {}, {}, {}
    for width in cfg.widths:
        run_dir = out / f"train-{regime}-w{width}"
        by_width[width] = train_per_sample(cfg, task, width, run_dir, device, quiet)
    models, fmt = by_width[max(cfg.widths)]
    errs = {k: [] for k in (*METHODS, "em_init_spread", "transformer_seed_spread")}
    for n in cfg.n_values:
        est = estimates(cfg, models, fmt, batch, n, sigma)
        err = {k: error_up_to_sign(v, batch.w_star) for k, v in est.items()}
        for k in METHODS:
            errs[k].append(err[k].mean(0) if k == "transformer" else err[k])
        errs["em_init_spread"].append(err["em_random"].std(0, correction=0))
        errs["transformer_seed_spread"].append(err["transformer"].std(0, correction=0))
        if n == max(cfg.n_values):
            scalars.update(label_aware(est, batch, n, regime))
        for w, (ms, f) in by_width.items():
            e = err["transformer"].mean() if ms is models else transformer_error(ms, f, batch, n)
            scalars[f"transformer_w{w}_error_n{n}_{regime}"] = float(e)
    gb = torch.Generator(device=device).manual_seed(cfg.eval_seed + 1)
    for k, v in errs.items():
        c = Curve.of_prompts(torch.stack(v, 1), cfg.n_values, "context pairs n",
                             "‖β̂ ∓ β*‖ (min over sign)", gb)  # fmt: skip
        curves[f"error_vs_n_{k}_{regime}"] = c.to_json()
        if k in METHODS:
            scalars[f"slope_{k}_{regime}"] = fit_line(
                [math.log(n) for n in cfg.n_values], [math.log(max(y, 1e-300)) for y in c.y]
            )["slope"]
            scalars[f"{k}_error_nmax_{regime}"] = c.y[-1]
    for k in ("em_init_spread", "transformer_seed_spread"):
        scalars[f"{k}_{regime}"] = sum(curves[f"error_vs_n_{k}_{regime}"]["y"]) / len(cfg.n_values)
    if len(models) < 2:  # one seed has no spread to compare: not measured, never "agrees"
        scalars[f"transformer_seed_spread_{regime}"] = math.nan
    layer_curve, layer_scalars = probe_layers(cfg, models[0], fmt, task, batch, regime, device)
    curves[f"probe_error_by_layer_{regime}"] = layer_curve
    return curves, {**scalars, **layer_scalars, f"snr_{regime}": snr}


@torch.no_grad()
def transformer_error(models, fmt, batch, n: int) -> float:
    """Mean over seeds and prompts of the transformer's ‖β̂ ∓ β*‖ with n context pairs."""
    b = with_context(batch, n)
    est = torch.stack([fmt.run(m, b)[:, 0].double() for m in models])
    return error_up_to_sign(est, batch.w_star).mean()


def label_aware(est: dict, batch, n: int, regime: str) -> dict:
    """MSE of x_qᵀβ̂_{z_q} (β̂ aligned to β*; the transformer's first seed) with n context pairs,
    beside the raw MSE E y² of the Bayes prediction 0 and the noise σ² no predictor beats."""
    p = mixture_problem(with_context(batch, n), n)
    out = {f"zero_prediction_mse_{regime}": p.y_query.double().square().mean().item()}
    for k in ("transformer", "em", "oracle"):
        beta = est[k][0] if k == "transformer" else est[k]
        beta = align_sign(beta.double(), batch.w_star.double())
        pred = label_aware_predictions(beta, p.X_query.double(), p.labels_query)
        out[f"label_aware_mse_{k}_{regime}"] = (pred - p.y_query).square().mean().item()
    return out


@torch.no_grad()
def hidden_and_beta(model, fmt, batch):
    """Every layer's hidden state at the query token [L+1, B, E] and the model's β̂ [B, d] (its
    read-out of the last one), from one forward pass."""
    h = hidden_at_predictions(model, fmt, batch)[:, :, 0]
    return h, model.head(h[-1]).double()


def probe_layers(cfg, model, fmt, task, batch, regime, device):
    """Per-layer β̂ through a ridge read-out of the hidden state at the query token (Fu et al.
    2024's probes, fitted in closed form on fresh prompts for all d coordinates at once; targets:
    β* signed as the model's own output), its error up to sign at the largest n, and the
    gradient-EM step each layer matches (`matched_steps` on gradient EM's mean error curve)."""
    n = max(cfg.n_values)
    scalars = {}
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 2)
    fit = task.sample(cfg.probe_prompts, n + 1, generator=g, device=device)
    h, beta = hidden_and_beta(model, fmt, fit)
    target = align_sign(fit.w_star.double(), beta)  # [B, d]
    feats = torch.cat([h.double(), h.new_ones(*h.shape[:2], 1, dtype=torch.float64)], -1)
    reg = cfg.probe_ridge * len(target) * torch.eye(feats.shape[-1], dtype=torch.float64)
    reg[-1, -1] = 0  # the bias is not shrunk
    W = torch.linalg.solve(feats.transpose(1, 2) @ feats + reg.to(feats.device),
                           feats.transpose(1, 2) @ target)  # [L+1, E+1, d]  # fmt: skip
    b = with_context(batch, n)
    he, _ = hidden_and_beta(model, fmt, b)
    per_layer = torch.cat([he.double(), he.new_ones(*he.shape[:2], 1, dtype=torch.float64)], -1) @ W
    layer_err = error_up_to_sign(per_layer, batch.w_star).mean(-1)  # [L+1]
    gem = icsim.algorithms.get("symmetric_gradient_em", noise_std=cfg.noise_std,
                               initialization="spectral", step_size=cfg.gradient_em_step_size,
                               inner_steps=cfg.gradient_em_inner_steps)  # fmt: skip
    traj = gem.run(b, cfg.em_steps).iterates
    gem_err = error_up_to_sign(traj, batch.w_star).mean(-1).tolist()
    scalars.update({f"gradient_em_error_step{t}_{regime}": e for t, e in enumerate(gem_err)})
    for layer, e in enumerate(layer_err.tolist()):
        m = matched_steps(gem_err, e)
        scalars[f"layer{layer}_matched_gradient_em_steps_{regime}"] = math.nan if m is None else m
    curve = Curve(list(range(len(layer_err))), layer_err.tolist(), "layer", "probe ‖β̂ ∓ β*‖")
    return curve.to_json(), scalars


# -- the per-prompt mode (Pathak et al. 2024) --------------------------------------------------


def per_prompt_stage(cfg: JinConfig, out: Path, device, quiet):
    """(curves, scalars): MSE against the prefix length k of the transformer, the posterior mean,
    least squares and the oracle that knows β_z, and the transformer's excess over the posterior
    mean, normalised by E y² (the zero predictor's MSE)."""
    pp, d = cfg.per_prompt, cfg.dim
    task = icsim.tasks.get("mixture_linear_regression", dim=d, n_components=pp.n_components,
                           mixing="per_prompt", noise_std=pp.noise_std)  # fmt: skip
    fmt = Interleaved(dim=d)
    mc = ModelConfig(n_dims_in=fmt.width, n_layer=pp.train.n_layer, n_head=pp.train.n_head,
                     n_embd=pp.n_embd, attention=pp.attention,
                     max_positions=2 * pp.n_points)  # fmt: skip

    def sample(step, rng):
        return task.sample(pp.train.batch_size, pp.n_points, generator=rng.device, device=device)

    models = train_models(pp.train, mc, fmt, sample, losses.mse_every_prefix(fmt),
                          out / "train-per-prompt", device, quiet)  # fmt: skip
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 3)
    batch = task.sample(cfg.eval_prompts, pp.n_points, generator=g, device=device)
    posterior = icsim.algorithms.get("mixture_posterior_mean", noise_std=pp.noise_std,
                                     components=batch.components[0])  # fmt: skip
    preds = {
        "transformer": model_prefix_predictions(models[0], fmt, batch),
        "posterior_mean": algorithm_prefix_predictions(posterior, batch),
        "least_squares": algorithm_prefix_predictions(icsim.algorithms.get("least_squares"), batch),
        "oracle": torch.einsum("bnd,bd->bn", batch.xs, batch.w_star),
    }
    scale = batch.ys.double().square().mean().item()
    sq = {k: (p.double() - batch.ys.double()).square() / scale for k, p in preds.items()}
    sq["excess_over_posterior"] = sq["transformer"] - sq["posterior_mean"]
    gb = torch.Generator(device=device).manual_seed(cfg.eval_seed + 4)
    curves, scalars = {}, {"per_prompt_y_power": scale}
    for k, v in sq.items():
        c = Curve.of_prompts(v, range(pp.n_points), "in-context examples k", "MSE / E y²", gb)
        curves[f"per_prompt_mse_vs_k_{k}"] = c.to_json()
        scalars[f"per_prompt_{k}_last"] = c.y[-1]
    scalars["per_prompt_excess_mean"] = sum(
        curves["per_prompt_mse_vs_k_excess_over_posterior"]["y"][1:]
    ) / (pp.n_points - 1)
    return curves, scalars


@EXPERIMENTS.register("jin2024-mixture-regression")
class Jin2024(Experiment):
    """Mixtures of linear regressions in context: transformers, EM and the Bayes predictor

    Jin, Balasubramanian, Lai, *Provable In-Context Learning for Mixture of Linear Regressions using
    Transformers*, arXiv 2410.14183 (2024); Pathak, Sen, Kong, Das, *Transformers can optimally
    learn regression mixture models*, ICLR 2024"""

    cost = {
        "quick": "~10 min on 2 CPU cores (587 s measured 2026-12-02, beside another run)",
        "full": "a GPU: the papers' sizes (not yet measured)",
    }
    profiles = PROFILES

    def run(self, cfg: JinConfig, out: Path, device: str, quiet: bool) -> Result:
        curves, scalars = {}, {"dim": cfg.dim}
        for regime, snr in zip(REGIMES, cfg.snrs, strict=True):
            c, s = per_sample_stage(cfg, regime, snr, out, device, quiet)
            curves, scalars = curves | c, scalars | s
        if cfg.per_prompt is not None:
            c, s = per_prompt_stage(cfg, out, device, quiet)
            curves, scalars = curves | c, scalars | s
        figs = figures(cfg, curves, out)
        comparison, verdicts, notes = report(cfg, scalars)
        return Result(curves, scalars, dict(PAPER), figs, comparison, verdicts, notes)

    # `--profile full --smoke`: training steps, evaluation and probe sizes cut; shapes stay.
    smoke = {
        "train.seeds": (0,), "eval_prompts": 8, "probe_prompts": 16,
        "init_seeds": 2, "em_steps": 2,
    }  # fmt: skip
