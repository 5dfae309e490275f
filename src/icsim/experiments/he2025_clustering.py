"""He, Chen, Cao, Fan, Liu 2025, "Transformers versus the EM algorithm in multi-class
clustering": a small transformer labels every point of a Gaussian-mixture prompt, against
Lloyd's algorithm and soft EM, across the separation Δ/σ (PAPERS.md §7)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from icsim import _validate as V
from icsim.algorithms import get as get_algorithm
from icsim.algorithms.clustering import clustering_problem
from icsim.analysis import clustering_metrics as M
from icsim.analysis.matching import best_matching_step
from icsim.analysis.plots import plot_curves, plot_heatmap
from icsim.analysis.report import Curve
from icsim.experiments.base import EXPERIMENTS, Experiment, Result
from icsim.experiments.he2025_clustering_findings import PAPER, report, summarise
from icsim.models.clustering_formats import PointTokens
from icsim.models.transformer import ModelConfig, build
from icsim.tasks import get as get_task
from icsim.tasks.gmm import bundled_dataset, labelled_prompts
from icsim.training.optim import Optim
from icsim.training.settings import RunSettings


@dataclass(frozen=True, kw_only=True)
class Training(RunSettings):
    """The seed slides' optimiser: Adam at lr 5e-4, multiplied by `decay` every `decay_every`
    steps (the slides: 0.995 per step over their 300 iterations): the exponential schedule to
    min_lr_ratio = decay^(steps/decay_every), which `optim()` sets (decay=None: min_lr_ratio as
    given). The other fields are `RunSettings`'."""

    steps: int = 4000
    lr: float = 5e-4
    schedule: str = "exponential"
    decay: float | None = 0.995
    decay_every: int = 20
    seed: int = 0

    def __post_init__(self):
        V.positive_int("decay_every", self.decay_every)
        if self.decay is not None:
            V.number("decay", self.decay, low=0, low_open=True, high=1)
        super().__post_init__()

    def optim(self) -> Optim:
        if self.decay is None:
            return Optim.like(self, kind="adam")
        ratio = self.decay ** (self.steps / self.decay_every)
        return Optim.like(replace(self, decay=None, min_lr_ratio=ratio), kind="adam")


@dataclass(frozen=True)
class HeConfig:
    dim: int = 2
    n_clusters: int = 3
    n_points: int = 64
    train_separation: tuple = (1.0, 6.0)  # Δ/σ drawn per training prompt (σ = 1)
    n_layer: int = 3
    n_head: int = 2
    n_embd: int = 64
    attentions: tuple = ("softmax", "relu")
    train: Training = field(default_factory=Training)
    separations: tuple = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    eval_prompts: int = 512
    iterations: int = 10  # Lloyd / EM iterations (k-means++ start), and the matching grid
    match_separation: float = 3.0
    beyond_separation: float = 4.0  # anisotropic (κ = 4) clusters with Dirichlet(1) weights
    real_prompts: int = 256
    eval_seed: int = 1234


PROFILES = {
    # 2 CPU cores, minutes: d = 2, K = 3, 32 points, the slides' 3-layer 2-head width-64 model
    # 6000 steps at lr 1e-3 (0.995 per 40 steps): transformer − Lloyd ARI at Δ/σ = 4 measured
    # −0.031 (1500 steps at 5e-4: −0.102; 6000 at 5e-4: −0.055; the finding allows −0.05)
    "quick": HeConfig(
        n_points=32,
        train=Training(steps=6000, batch_size=32, lr=1e-3, decay_every=40),
        eval_prompts=256,
    ),
    # a GPU: d = 5, K = 4, 128 points, longer training, more evaluation prompts
    "full": HeConfig(
        dim=5,
        n_clusters=4,
        n_points=128,
        train=Training(steps=40_000, batch_size=256, decay_every=200, log_every=500),
        eval_prompts=2048,
        iterations=20,
        real_prompts=1024,
    ),  # fmt: skip
}


def train(cfg: HeConfig, attention: str, out: Path, device: str, quiet: bool):
    """One transformer through the Trainer: per-point cross-entropy against the true clusters
    renamed by the permutation that fits the output best (`losses.cross_entropy_matched`)."""
    from icsim.training import Trainer, losses

    tc, dev = cfg.train, torch.device(device)
    task = get_task("gmm_clustering", dim=cfg.dim, n_clusters=cfg.n_clusters,
                    separation=cfg.train_separation)  # fmt: skip
    fmt_ = PointTokens(cfg.dim)
    mc = ModelConfig(n_dims_in=cfg.dim, n_dims_out=cfg.n_clusters, n_layer=cfg.n_layer,
                     n_head=cfg.n_head, n_embd=cfg.n_embd, attention=attention,
                     positional=False, causal=False)  # fmt: skip
    torch.manual_seed(tc.seed)
    model = build("transformer", mc).to(dev)
    trainer = Trainer(
        model, fmt_,
        sample=lambda step, rng: task.sample(tc.batch_size, cfg.n_points, generator=rng.device,
                                             device=dev),
        loss=losses.cross_entropy_matched(
            fmt_, lambda logp, b: M.matched_targets(logp, b.truth["z"], b.truth["mask"])),
        optim=tc.optim(),
        run=tc.run(out / f"train_{attention}", quiet=quiet, overwrite=True),
        seeds=(tc.seed,), device=dev,
        record=lambda k: {"model_kind": "transformer", "model_config": mc.to_dict(),
                          "he2025": asdict(cfg)},
    )  # fmt: skip
    final = trainer.train()
    return model.eval(), final["loss"]


@torch.no_grad()
def transformer_logits(model, batch, every_layer: bool = False) -> torch.Tensor:
    """[B, n, K] logits (or [L+1, B, n, K]: the model's own head on every layer's state)."""
    fmt_ = PointTokens(batch.dim)
    if not every_layer:
        return fmt_.run(model, batch)
    _, hidden = fmt_.run(model, batch, return_hidden=True)
    return model.head(hidden)


def score(labels, batch, K, log_probs=None) -> dict:
    """Per-prompt ARI, NMI, misclustering (and cross-entropy of soft labels) [B] each."""
    z, mask = batch.truth["z"], batch.truth["mask"]
    out = {
        "ari": M.adjusted_rand_index(z, labels, mask),
        "nmi": M.normalized_mutual_info(z, labels, mask),
        "misclustering": M.misclustering_rate(z, labels, K, mask),
    }
    if log_probs is not None:
        out["cross_entropy"] = M.soft_cross_entropy(log_probs, z, mask)
    return out


def baseline_problem(batch):
    """The batch as Lloyd and EM see it: EM knows σ but not the weights (uniform π, as the
    em_step construction), also where the prompts' weights are unequal."""
    return clustering_problem(batch)._replace(weights=None)


def all_methods(cfg, models, batch) -> dict:
    """name -> per-prompt scores of every transformer, Lloyd, EM (known σ) and the em_step
    construction (T iterations from the same k-means++ start)."""
    from icsim.constructions import build as build_construction

    K, T = cfg.n_clusters, cfg.iterations
    out = {}
    for att, model in models.items():
        logits = transformer_logits(model, batch).double()
        name = "transformer" if att == "softmax" else f"transformer_{att}"
        out[name] = score(logits.argmax(-1), batch, K, logits.log_softmax(-1))
    problem = baseline_problem(batch)
    lloyd = get_algorithm("lloyd").run(problem, T)
    out["lloyd"] = score(lloyd.predictions[-1], batch, K)
    em = get_algorithm("soft_em").run(problem, T)
    resp = em.responsibilities[-1].double().clamp(min=1e-300)  # an underflowed γ: −690
    out["em"] = score(em.predictions[-1], batch, K, resp.log())
    con, fmt_ = build_construction("em_step", dim=cfg.dim, steps=T, n_clusters=K)
    con = con.to(batch.xs.device)  # float64 weights, on the batch's device
    with torch.no_grad():
        gamma = fmt_.run(con, batch.to(dtype=torch.float64), em.iterates[0].double())
    labels = torch.where(batch.truth["mask"], gamma.argmax(-1), -1)
    out["em_construction"] = score(labels, batch, K)
    return out


@EXPERIMENTS.register("he2025-em-clustering")
class He2025Clustering(Experiment):
    """Transformers versus EM in multi-class clustering (He et al. 2025)

    He, Chen, Cao, Fan, Liu, *Transformers versus the EM algorithm in multi-class clustering*, arXiv
    2502.06007, 2025"""

    cost = {
        "quick": "~7 min on 2 CPU cores (401 s measured 2026-12-02, beside another run)",
        "full": "a GPU: the paper's scale (not yet measured)",
    }
    profiles = PROFILES
    smoke = {"eval_prompts": 8, "iterations": 2, "real_prompts": 4}

    def run(self, cfg: HeConfig, out: Path, device: str, quiet: bool) -> Result:
        models, scalars = {}, {"dim": cfg.dim, "n_clusters": cfg.n_clusters}
        for att in cfg.attentions:
            models[att], scalars[f"final_train_loss_{att}"] = train(cfg, att, out, device, quiet)
        gen = torch.Generator(device=device).manual_seed(cfg.eval_seed)
        curves, per_sep = {}, []
        for sep in cfg.separations:
            task = get_task("gmm_clustering", dim=cfg.dim, n_clusters=cfg.n_clusters,
                            separation=sep)  # fmt: skip
            batch = task.sample(cfg.eval_prompts, cfg.n_points, generator=gen, device=device)
            per_sep.append(all_methods(cfg, models, batch))
        for method in per_sep[0]:
            for metric in per_sep[0][method]:
                values = torch.stack([s[method][metric] for s in per_sep], 1)
                key = f"{metric}_vs_separation_{method}"
                curves[key] = Curve.of_prompts(values, cfg.separations, "separation Δ/σ",
                                               metric, generator=gen).to_json()  # fmt: skip
        rate = [M.minimax_rate(s, 1.0) for s in cfg.separations]
        curves["minimax_rate"] = Curve(list(cfg.separations), rate, "separation Δ/σ",
                                       "exp(−Δ²/8σ²)").to_json()  # fmt: skip
        match = layer_matching(cfg, models["softmax"], gen, device)
        curves.update(match.pop("curves"))
        scalars.update(match)
        curves.update(against_points(cfg, models, gen, device))
        scalars.update(beyond_assumptions(cfg, models, gen, device))
        scalars.update(real_data(cfg, models, gen, device))
        scalars.update(summarise(cfg, curves))
        figures = [
            plot_curves({k.rsplit("_vs_separation_", 1)[1]: curves[k] for k in curves
                         if k.startswith("ari_vs_separation")},
                        out / "ari_vs_separation.png", title="ARI against separation"),
            plot_curves({**{k.rsplit("_vs_separation_", 1)[1]: curves[k] for k in curves
                            if k.startswith("misclustering_vs_separation")},
                         "exp(−Δ²/8σ²)": curves["minimax_rate"]},
                        out / "misclustering_vs_separation.png", logy=True,
                        title="misclustering against separation"),
            plot_curves({k.rsplit("_vs_points_", 1)[1]: curves[k] for k in curves
                         if k.startswith("ari_vs_points")}, out / "ari_vs_points.png",
                        title=f"ARI against n at Δ/σ = {cfg.match_separation:g}"),
            plot_heatmap([curves[f"em_match_layer_{i}"]["y"] for i in range(cfg.n_layer + 1)],
                         out / "layer_vs_em_iteration.png",
                         xlabel="EM iteration", ylabel="layer",
                         title="ARI between layer read-out and EM iteration"),
        ]  # fmt: skip
        return Result(curves, scalars, PAPER, figures, *report(cfg, scalars))


def layer_matching(cfg, model, gen, device) -> dict:
    """Which EM iteration each layer's read-out (the model's head on the layer's state) is:
    ARI between the layer's labels and EM's after t = 0..T iterations, averaged over prompts,
    the best t per layer (`analysis.matching.best_matching_step`); ARI against the truth per
    layer and per Lloyd / EM iteration."""
    task = get_task("gmm_clustering", dim=cfg.dim, n_clusters=cfg.n_clusters,
                    separation=cfg.match_separation)  # fmt: skip
    batch = task.sample(cfg.eval_prompts, cfg.n_points, generator=gen, device=device)
    z, mask, T = batch.truth["z"], batch.truth["mask"], cfg.iterations
    layers = transformer_logits(model, batch, every_layer=True).argmax(-1)  # [L+1, B, n]
    em = get_algorithm("soft_em").run(baseline_problem(batch), T).predictions
    lloyd = get_algorithm("lloyd").run(baseline_problem(batch), T).predictions
    sim = torch.stack([torch.stack([M.adjusted_rand_index(e, lay, mask).mean() for e in em])
                       for lay in layers])  # [L+1, T+1]  # fmt: skip
    matched = best_matching_step(sim, list(range(T + 1)))
    curves = {
        f"ari_vs_{name}": Curve(list(range(len(p))),
                                [M.adjusted_rand_index(z, q, mask).mean().item() for q in p],
                                x_label, "ARI").to_json()
        for name, p, x_label in (("layer_transformer", layers, "layer"),
                                 ("iteration_em", em, "iteration"),
                                 ("iteration_lloyd", lloyd, "iteration"))
    }  # fmt: skip
    for i, row in enumerate(sim.tolist()):
        curves[f"em_match_layer_{i}"] = Curve(list(range(T + 1)), row, "EM iteration",
                                              f"ARI(layer {i}, EM iterate)").to_json()  # fmt: skip
    out = {f"matched_em_iteration_layer_{i}": m for i, m in enumerate(matched)}
    out["layer_match_monotone"] = float(all(a <= b for a, b in zip(matched[1:], matched[2:])))
    out["last_layer_best_similarity"] = sim[-1].max().item()
    return {**out, "curves": curves}


def against_points(cfg, models, gen, device) -> dict:
    """ARI against the number of points n (n/4 .. 2n; the models were trained at n) at
    Δ/σ = match_separation: curves `ari_vs_points_<method>`."""
    task = get_task("gmm_clustering", dim=cfg.dim, n_clusters=cfg.n_clusters,
                    separation=cfg.match_separation)  # fmt: skip
    grid = [max(cfg.n_clusters, cfg.n_points // 4), cfg.n_points // 2, cfg.n_points,
            2 * cfg.n_points]  # fmt: skip
    rows = [all_methods(cfg, models, task.sample(cfg.eval_prompts, n, generator=gen,
                                                  device=device)) for n in grid]  # fmt: skip
    return {
        f"ari_vs_points_{m}": Curve.of_prompts(torch.stack([r[m]["ari"] for r in rows], 1), grid,
                                               "points n", "ARI", generator=gen).to_json()
        for m in rows[0]
    }  # fmt: skip


def beyond_assumptions(cfg, models, gen, device) -> dict:
    """ARI at Δ = beyond_separation on anisotropic clusters (κ = 4) with Dirichlet(1) weights."""
    task = get_task("gmm_clustering", dim=cfg.dim, n_clusters=cfg.n_clusters,
                    separation=cfg.beyond_separation, covariance="anisotropic",
                    condition_number=4.0, weights="dirichlet")  # fmt: skip
    batch = task.sample(cfg.eval_prompts, cfg.n_points, generator=gen, device=device)
    res = all_methods(cfg, models, batch)
    return {f"beyond_ari_{m}": s["ari"].mean().item() for m, s in res.items()}


def real_data(cfg, models, gen, device) -> dict:
    """ARI on prompts of scikit-learn's bundled iris and digits (`tasks.gmm.labelled_prompts`:
    K classes per prompt, standardised, top-d principal directions, unit within-class
    variance); iris (3 classes) is left out when K > 3."""
    out = {}
    for name in ("iris", "digits"):
        X, y = bundled_dataset(name)
        if int(y.max()) + 1 < cfg.n_clusters:
            continue
        batch = labelled_prompts(X, y, cfg.real_prompts, cfg.n_points, cfg.n_clusters,
                                 cfg.dim, generator=gen, device=device)  # fmt: skip
        res = all_methods(cfg, models, batch)
        out.update({f"{name}_ari_{m}": s["ari"].mean().item() for m, s in res.items()})
    return out
