"""Wu, Su, Hu, Song, Liu 2025, "Transformers are Deep Optimizers: Provable In-Context Learning
for Deep Model Training" (ICML 2025; arXiv 2411.16549, §5): a transformer trained on prompts
labelled by random N-layer ReLU networks predicts, in context, about as well as the same network
trained directly on the prompt's examples (R² on held-out prompts), also under shifts of the
input mixture; Theorem 1's construction does L steps of that training in (2N+4)L layers.

What is measured, per target depth N and attention kind:
- R² (pooled over prompts, one query per prompt, `r2_score`) of the trained transformer, of the
  network trained directly on each prompt (`relu_network_trained`: Adam, width 200, 100 epochs,
  the paper's baseline), of GD on the target's own architecture (`relu_network_gd`, Theorem 1's
  algorithm), of least squares and of the context mean, on in-distribution prompts, on longer
  prompts than trained on and on shifted mixtures w₁N(−2·1, I) + w₂N(2·1, I);
- R² against the number of in-context examples k;
- optionally: a depth ablation of the transformer, the layer-matching of the trained model's
  per-layer read-outs against GD steps on the network, and the `deep_gd` construction's per-step
  error against Theorem 1's bound η·ε, against the heads and against L.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import icsim
from icsim.analysis.evaluation import model_prefix_predictions
from icsim.analysis.matching import best_matching_step, prefix_trajectory, similarity_matrix
from icsim.analysis.metrics import r2_score
from icsim.analysis.plots import plot_curves, plot_heatmap
from icsim.analysis.probes import fit_probes, layer_predictions
from icsim.experiments.base import EXPERIMENTS, Experiment, Result, with_device
from icsim.models.formats import Stacked
from icsim.tasks.relu_network import NetworkShape, network_forward
from icsim.training import Curriculum, TrainConfig, Trainer

# The paper's baseline (issue 9, from the paper's §5): the N-layer network trained directly on the
# prompt's examples with Adam, hidden width 200, 100 epochs; full batch and lr are not stated, so
# `relu_network_trained`'s defaults (whole context per update, lr 0.01).
NETWORK = {"width": 200, "epochs": 100, "lr": 0.01}
# GD on the target's own architecture (Theorem 1's algorithm, the construction's reference);
# η = 0.01: the best of {0.01, 0.03, 0.1} at d = 5 on N(−2·1, I) inputs (0.1 diverges).
GD = {"step_size": 0.01, "steps": 1000}
# Layer matching: per-layer ridge read-outs (`fit_probes`) against GD steps on a log grid.
MATCHING = {
    "prompts": 128,
    "queries": 16,
    "probe_prompts": 2048,
    "steps": [0] + [2**i for i in range(11)],
}
SHIFTS = ((0.9, 0.1), (0.7, 0.3), (0.5, 0.5))  # Wu et al.'s shifted test mixtures (w₁, w₂)

PREDICTORS = ("transformer", "trained_network", "gd_network", "least_squares", "context_mean")


@dataclass(frozen=True)
class WuConfig:
    """One transformer is trained per (target depth N, attention kind) from `train` (task
    `relu_network_regression`; `train.task_params` sets the target's width, weights, noise;
    `train.curriculum` is replaced by constant prompts of `n_examples` + 1 points)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    depths: tuple[int, ...] = (3, 4, 6)  # target networks' N
    attentions: tuple[str, ...] = ("relu", "softmax")
    n_examples: int = 50  # in-context examples per training prompt (the query is one more point)
    long_examples: int = 75  # longer test prompts (0: skip)
    mixtures: tuple[tuple[float, float], ...] = SHIFTS
    eval_prompts: int = 6400  # the paper's 6400 test samples
    ood_prompts: int = 6400  # per out-of-distribution row (longer prompts, each mixture)
    curve_examples: tuple[int, ...] = (5, 10, 15, 20, 30, 40, 45, 50)  # k for baselines' R²(k)
    network: dict = field(default_factory=lambda: dict(NETWORK))
    gd: dict | None = field(default_factory=lambda: dict(GD))
    layer_ablation: tuple[int, ...] = (4, 6, 8, 10)  # transformer layers (first N, attention)
    ablation_examples: tuple[int, ...] = (15, 30, 45)
    ablation_steps: int | None = None  # None: train.steps
    matching: dict | None = field(default_factory=lambda: dict(MATCHING))
    construction: dict | None = field(default_factory=dict)  # verify_deep_gd kwargs; None: skip
    eval_seed: int = 2025
    # prompts per baseline fit. On a CPU keep the width-200 network's [chunk, K, K] gradients
    # under glibc's 32 MiB mmap threshold: larger buffers are page-faulted afresh at every
    # allocation, which made the fits 2× slower (sys time) at 1000 prompts per chunk.
    chunk: int = 100


# Token format: stacked tokens [x_i; y_i] (the construction's layout, h_i = [x_i; y_i; ...]) with
# no positional embedding, so the model is permutation-invariant over the context and reads
# longer prompts without untrained positions. PAPERS.md does not give the paper's format. With
# Garg et al.'s interleaved x/y tokens our quick-profile transformers stayed at the context-mean
# solution (R² ≈ 0.85 at 20 examples after 3000 steps, 4 or 8 layers, softmax or ReLU attention,
# lr 1e-3 or 3e-3, with or without a curriculum), while stacked tokens reach least squares' R²
# in about 1000 steps: the inputs' large common mean (−2·1) leaves the slope a small part of
# the signal, and pairing x_i with y_i in one token makes it easy to find.
PROFILES = {
    # The paper (PAPERS.md §4, unverified): d = 20, x ~ N(−2·1, I), 3-, 4- and 6-layer targets,
    # GPT-2 12 blocks / 8 heads / width 256, ReLU and softmax attention, 50 examples, 500k steps;
    # test on 75 examples, shifted mixtures, 6400 prompts; depth ablation 4/6/8/10 layers at
    # 15/30/45 examples. Batch size and lr are not stated: Garg et al.'s 64 and 1e-4.
    "full": WuConfig(
        train=TrainConfig(
            task="relu_network_regression",
            dim=20,
            token_format="stacked",
            positional=False,
            steps=500_000,
            log_every=500,
            checkpoint_every=10_000,
            warmup_steps=1000,
            amp=True,
            compile=True,
        ),
        # ‖x‖² ≈ 5d: η scaled by 5/d from the step size tuned at d = 5 (not tuned at d = 20)
        gd={"step_size": 0.0025, "steps": 1000},
        ablation_steps=100_000,
        chunk=1600,  # a GPU: bounded by the N = 6 networks' Adam state
    ),
    # 2 CPU cores in ≤ 20 min: d = 5, 3-layer targets of width 20, 20 examples (30 at test, the
    # paper's 1.5×), one 4-layer 64-wide softmax transformer, 2000 steps; 500 test prompts (300
    # per out-of-distribution row: the width-200 baseline fits dominate the time); no ablation.
    "quick": WuConfig(
        train=TrainConfig(
            task="relu_network_regression",
            dim=5,
            token_format="stacked",
            positional=False,
            n_layer=4,
            n_head=4,
            n_embd=64,
            steps=2000,
            batch_size=64,
            lr=1e-3,
            warmup_steps=200,
            schedule="cosine",
            log_every=100,
            checkpoint_every=2000,
            curriculum=Curriculum(enabled=False, dims_start=5, dims_end=5),  # replaced per run
        ),
        depths=(3,),
        attentions=("softmax",),
        n_examples=20,
        long_examples=30,
        eval_prompts=500,
        ood_prompts=300,
        curve_examples=(5, 10, 20),
        gd={"step_size": 0.01, "steps": 500},
        layer_ablation=(),
        matching={
            "prompts": 128,
            "queries": 16,
            "probe_prompts": 1024,
            "steps": [0] + [2**i for i in range(12)],
        },
        construction={"heads_sweep": (3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 4097)},
    ),
}

# PAPERS.md §4 gives the paper's settings and finding but no R² values: every number is
# "not reported" rather than guessed.
NOT_REPORTED = "not reported"
PAPER = {
    "r2_transformer": NOT_REPORTED,
    "r2_trained_network": NOT_REPORTED,
    "finding": "ICL matches training the N-layer network (PAPERS.md §4, unverified)",
    "construction_layers_per_step": "2N + 4 (Theorem 1)",
    "construction_one_step_error_bound": "η·ε (Theorem 1)",
}


def train_config(cfg: WuConfig, depth: int, attention: str, **over) -> TrainConfig:
    """The TrainConfig of the transformer for targets of depth N with `attention`.

    The Trainer sizes the learned positions from `curriculum.points_end`; a constant curriculum
    (no increments) trains on n_examples + 1 points throughout while leaving positions for the
    longer test prompts, as a GPT-2 with more positions than its training length (the extra
    positions stay untrained, as in the paper's setting)."""
    t = cfg.train
    n_train = cfg.n_examples + 1
    n_max = max(n_train, cfg.long_examples + 1)
    cur = Curriculum(
        enabled=n_max > n_train,
        dims_start=t.dim,
        dims_end=t.dim,
        dims_inc=0,
        points_start=n_train,
        points_end=n_max,
        points_inc=0,
    )
    params = {**t.task_params, "depth": depth}
    return replace(t, task_params=params, attention=attention, curriculum=cur, **over)


@torch.no_grad()
def transformer_predictions(model, fmt, batch, chunk: int = 256) -> torch.Tensor:
    """[B, n]: the model's prediction for y_k from the first k examples, every k (chunked)."""
    parts = [
        model_prefix_predictions(
            model, fmt, replace(batch, xs=batch.xs[i : i + chunk], ys=batch.ys[i : i + chunk])
        )
        for i in range(0, batch.xs.shape[0], chunk)
    ]
    return torch.cat(parts)


@torch.no_grad()
def baseline_predictions(batch, k: int, depth: int, width: int, cfg: WuConfig) -> dict:
    """Each baseline's prediction [B] for point k of every prompt from the first k examples."""
    B = batch.xs.shape[0]
    net = icsim.algorithms.get("relu_network_trained", depth=depth, **cfg.network)
    shape = NetworkShape(batch.xs.shape[-1], depth, net.width)
    out = {"trained_network": [], "gd_network": [], "least_squares": []}
    for i in range(0, B, cfg.chunk):
        sub = batch.prefix(k + 1)
        sub = replace(sub, xs=sub.xs[i : i + cfg.chunk], ys=sub.ys[i : i + cfg.chunk], truth={})
        problem = sub.split(k)
        # one Adam per prompt, all at once (relu_network_trained is batched over problems)
        w = net.fit(problem)
        out["trained_network"].append(network_forward(shape, w, problem.X_query)[:, 0])
        if cfg.gd is not None:
            gd = icsim.algorithms.get(
                "relu_network_gd", depth=depth, width=width, step_size=cfg.gd["step_size"]
            )
            traj = gd.run(problem, cfg.gd["steps"])
            out["gd_network"].append(traj.predictions[-1, :, 0])
        ls = icsim.algorithms.get("least_squares").run(problem, 0)
        out["least_squares"].append(ls.predictions[-1, :, 0])
    preds = {name: torch.cat(v) for name, v in out.items() if v}
    preds["context_mean"] = batch.ys[:, :k].mean(1) if k > 0 else torch.zeros_like(batch.ys[:, 0])
    return preds


def r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    """R² pooled over prompts (one query each): 1 − Σ(y − ŷ)² / Σ(y − ȳ)²."""
    return r2_score(pred.double(), y.double(), dim=0).item()


@EXPERIMENTS.register("wu2025-deep-optimizers")
class Wu2025(Experiment):
    name = "wu2025-deep-optimizers"
    title = "Transformers train an N-layer ReLU network in context (Wu et al. 2025)"
    citation = (
        "Wu, Su, Hu, Song, Liu, *Transformers are Deep Optimizers: Provable In-Context Learning "
        "for Deep Model Training*, ICML 2025 (arXiv 2411.16549)"
    )
    profiles = PROFILES

    def run(self, cfg: WuConfig, out: Path, device: str, quiet: bool) -> Result:
        res = Result(paper=dict(PAPER))
        table = []  # (setting, N, attention, {predictor: R²})
        for depth in cfg.depths:
            cache = {}  # baselines depend on the prompts only: shared by the attentions
            for attention in cfg.attentions:
                tcfg = with_device(train_config(cfg, depth, attention), device)
                trainer = Trainer(tcfg, out / f"train-N{depth}-{attention}", quiet=quiet)
                final = trainer.train()
                tag = f"N{depth}_{attention}"
                res.scalars[f"final_train_loss_{tag}"] = final["loss"]
                rows = _evaluate(trainer, cfg, depth, attention, cache, res, out, device)
                table += [(s, depth, attention, r) for s, r in rows]
                if cfg.matching is not None:
                    _layer_matching(trainer, cfg, depth, tag, res, out, device)
            _plot_r2_curves(res, cfg, depth, out)
            _plot_shifts(res, table, cfg, depth, out)
        if cfg.layer_ablation:
            _ablation(cfg, res, out, device, quiet)
        if cfg.construction is not None:
            _construction(cfg.construction, res, out)
        _headline(cfg, table, res)
        res.notes = _notes(cfg, table, res)
        return res

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    smoke = {
        "ablation_steps": 2,
        "eval_prompts": 8,
        "ood_prompts": 8,
        "network.epochs": 1,
        "gd.steps": 2,
        "matching.prompts": 8,
        "matching.probe_prompts": 64,
    }


def _evaluate(trainer, cfg: WuConfig, depth, attention, cache, res: Result, out, device):
    """R² rows for one trained transformer: in distribution (with R²(k) curves), long prompts,
    shifted mixtures. Returns [(setting, {predictor: R²})]."""
    n, width, d = cfg.n_examples, trainer.task.width, trainer.cfg.dim
    task_params = {k: v for k, v in trainer.cfg.task_params.items() if k != "mixture"}
    settings = [("in_distribution", (1.0, 0.0), n)]
    if cfg.long_examples > 0:
        settings.append(("long", (1.0, 0.0), cfg.long_examples))
    settings += [(f"mixture_{w1:g}_{w2:g}", (w1, w2), n) for w1, w2 in cfg.mixtures]
    rows = []
    for i, (setting, mixture, k) in enumerate(settings):
        task = icsim.tasks.get(trainer.cfg.task, dim=d, **task_params, mixture=mixture)
        prompts = cfg.eval_prompts if setting == "in_distribution" else cfg.ood_prompts
        g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 1000 * depth + i)
        batch = task.sample(prompts, k + 1, generator=g, device=device)
        tf = transformer_predictions(trainer.model, trainer.fmt, batch)
        y = batch.ys
        key = (setting, k)
        if key not in cache:
            ks = sorted({k} | ({*cfg.curve_examples, *cfg.ablation_examples} & set(range(1, k))))
            ks = ks if setting == "in_distribution" else [k]
            cache[key] = {kk: baseline_predictions(batch, kk, depth, width, cfg) for kk in ks}
        base = cache[key]
        scores = {"transformer": r2(tf[:, k], y[:, k])}
        scores.update({name: r2(p, y[:, k]) for name, p in base[k].items()})
        rows.append((setting, scores))
        tag = f"N{depth}_{attention}_{setting}"
        for name, v in scores.items():
            res.scalars[f"r2_{name}_{tag}"] = v
        if setting == "in_distribution":
            ks = list(range(1, k + 1))
            res.curves[f"r2_vs_examples_transformer_N{depth}_{attention}"] = _curve(
                ks, [r2(tf[:, kk], y[:, kk]) for kk in ks]
            )
            for name in base[k]:
                if f"r2_vs_examples_{name}_N{depth}" not in res.curves:
                    kk = sorted(base)
                    res.curves[f"r2_vs_examples_{name}_N{depth}"] = _curve(
                        kk, [r2(base[j][name], y[:, j]) for j in kk]
                    )
    return rows


def _curve(x, y, x_label="in-context examples k", y_label="R² (pooled over prompts)"):
    return {"x": list(x), "y": list(y), "x_label": x_label, "y_label": y_label}


def _plot_r2_curves(res: Result, cfg: WuConfig, depth: int, out: Path):
    curves = {
        k.removeprefix("r2_vs_examples_").removesuffix(f"_N{depth}"): v
        for k, v in res.curves.items()
        if k.startswith("r2_vs_examples_") and f"_N{depth}" in k
    }
    # least squares interpolates at k <= d (R² far below 0 would flatten every other curve):
    # the figure leaves out points with R² < 0; metrics.json keeps every k.
    shown = {
        name: {
            **c,
            "x": [x for x, y in zip(c["x"], c["y"]) if y >= 0],
            "y": [y for y in c["y"] if y >= 0],
        }
        for name, c in curves.items()
    }
    path = plot_curves(
        shown,
        out / f"r2_vs_examples_N{depth}.png",
        title=f"R² vs in-context examples, {depth}-layer ReLU targets (d = {cfg.train.dim})",
    )
    res.figures.append(path)


def _plot_shifts(res: Result, table, cfg: WuConfig, depth: int, out: Path):
    if not cfg.mixtures:
        return
    mix = [(1.0, 0.0), *cfg.mixtures]
    names = ["in_distribution" if m == (1.0, 0.0) else f"mixture_{m[0]:g}_{m[1]:g}" for m in mix]
    curves = {}
    for s, N, att, scores in table:
        if N != depth or s not in names:
            continue
        for pred, v in scores.items():
            label = f"{pred} ({att})" if pred == "transformer" else pred
            c = curves.setdefault(label, {"x": [], "y": []})
            if mix[names.index(s)][1] not in c["x"]:
                c["x"].append(mix[names.index(s)][1])
                c["y"].append(v)
    for name, c in curves.items():
        order = sorted(range(len(c["x"])), key=c["x"].__getitem__)
        c["x"], c["y"] = [c["x"][i] for i in order], [c["y"][i] for i in order]
        c["x_label"], c["y_label"] = "weight w₂ of the N(+2·1, I) component", "R²"
        res.curves[f"r2_vs_shift_{name.replace(' (', '_').rstrip(')')}_N{depth}"] = c
    res.figures.append(
        plot_curves(
            curves,
            out / f"r2_vs_shift_N{depth}.png",
            title=f"R² under input shift, {depth}-layer targets ({cfg.n_examples} examples)",
        )
    )


def _layer_matching(trainer, cfg: WuConfig, depth, tag, res: Result, out, device):
    """Per-layer ridge read-outs of the trained model matched (similarity of errors, Fu et al.
    2024) against GD steps on the target's architecture, Theorem 1's algorithm."""
    m, n = cfg.matching, cfg.n_examples
    stacked = isinstance(trainer.fmt, Stacked)
    if stacked and not trainer.cfg.positional:
        # with one query the similarity of errors is only a sign; the stacked model takes any
        # number of queries (each attends to the context only), so ask several per prompt
        fmt = Stacked(trainer.cfg.dim, n_queries=m.get("queries", 16))
    else:
        fmt = trainer.fmt
    n_points = n + (fmt.n_queries if stacked else 1)
    g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 7)
    probes = fit_probes(
        trainer.model,
        fmt,
        trainer.task,
        n_prompts=m["probe_prompts"],
        n_points=n_points,
        generator=g,
        device=device,
    )
    batch = trainer.task.sample(m["prompts"], n_points, generator=g, device=device)
    layers = layer_predictions(trainer.model, fmt, batch, probes)  # [L+1, B, queries]
    step_size = (cfg.gd or GD)["step_size"]
    gd = icsim.algorithms.get(
        "relu_network_gd", depth=depth, width=trainer.task.width, step_size=step_size
    )
    steps = list(m["steps"])
    if stacked:  # the queries after the n context examples
        traj = gd.run(batch.split(n), max(steps)).predictions[steps]
        target = batch.ys[:, n:]
    else:  # interleaved: every prefix is a prediction
        traj, target = prefix_trajectory(gd, batch, max(steps), record=steps), batch.ys
    sim = similarity_matrix(layers, traj.to(layers.dtype), target, "error_cosine")
    match = {
        "steps": steps,
        "similarity": sim,
        "matched_step": best_matching_step(sim, steps),
        "best_similarity": sim.max(dim=1).values.tolist(),
    }
    L = len(match["matched_step"])
    res.curves[f"matched_gd_step_{tag}"] = _curve(
        range(1, L), match["matched_step"][1:], "layer", "best-matching GD step"
    )
    res.curves[f"matched_gd_similarity_{tag}"] = _curve(
        range(1, L), match["best_similarity"][1:], "layer", "similarity of errors (best step)"
    )
    res.scalars[f"matched_gd_step_last_layer_{tag}"] = match["matched_step"][-1]
    res.scalars[f"matched_gd_similarity_last_layer_{tag}"] = match["best_similarity"][-1]
    res.figures.append(
        plot_heatmap(
            match["similarity"][1:].double().cpu().numpy(),
            out / f"layer_matching_{tag}.png",
            xlabel=f"GD step on the {depth}-layer network (η = {step_size:g})",
            ylabel="transformer layer",
            xticks=match["steps"],
            yticks=list(range(1, L)),
            title=f"similarity of errors: layers vs GD steps ({tag})",
        )
    )


def _ablation(cfg: WuConfig, res: Result, out: Path, device: str, quiet: bool):
    """R² of transformers of 4/6/8/… layers at 15/30/45 examples (first N and attention)."""
    depth, attention = cfg.depths[0], cfg.attentions[0]
    steps = cfg.ablation_steps or cfg.train.steps
    curves = {}
    for L in cfg.layer_ablation:
        tcfg = with_device(train_config(cfg, depth, attention, n_layer=L, steps=steps), device)
        trainer = Trainer(tcfg, out / f"train-ablation-L{L}", quiet=quiet)
        trainer.train()
        g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 1000 * depth)
        batch = trainer.task.sample(
            cfg.eval_prompts, cfg.n_examples + 1, generator=g, device=device
        )
        tf = transformer_predictions(trainer.model, trainer.fmt, batch)
        for k in cfg.ablation_examples:
            v = r2(tf[:, k], batch.ys[:, k])
            res.scalars[f"r2_transformer_layers{L}_k{k}"] = v
            c = curves.setdefault(f"k = {k}", _curve([], [], "transformer layers", "R²"))
            c["x"].append(L)
            c["y"].append(v)
    for name, c in curves.items():
        res.curves[f"ablation_r2_{name.replace(' = ', '')}"] = c
    res.figures.append(
        plot_curves(curves, out / "ablation_layers.png", title="R² vs transformer depth")
    )


def _construction(params: dict, res: Result, out: Path):
    """Theorem 1's construction: per-step distance to GD and one-step error vs the bound η·ε."""
    from icsim.constructions.deep_gd import verify_deep_gd

    r = verify_deep_gd(**params, figure=out / "deep_gd_construction.png")
    for k, v in r["scalars"].items():
        res.scalars[f"construction_{k}"] = v
    res.scalars["construction_layers_per_step"] = r["layers_per_step"]
    sw = r["heads_sweep"]
    # does the distance to exact GD fall as the heads grow? (ends of the sweep, and the share of
    # the sweep's steps that do not increase it)
    errs = sw["max_distance_to_gd"]
    res.scalars["construction_error_fewest_heads"] = errs[0]
    res.scalars["construction_error_most_heads"] = errs[-1]
    res.scalars["construction_error_non_increasing_fraction"] = sum(
        b <= a for a, b in zip(errs, errs[1:])
    ) / max(len(errs) - 1, 1)
    res.curves["construction_error_vs_heads"] = _curve(
        sw["heads"], sw["max_distance_to_gd"], "heads per unit (r′ knots)", "max_l ‖w̄ − w̄_GD‖₂"
    )
    res.curves["construction_error_vs_step"] = _curve(
        r["steps"], r["distance_to_gd"], "GD step l", "‖w̄^(l) − w̄^(l)_GD‖₂"
    )
    res.curves["construction_one_step_error"] = _curve(
        r["steps"], r["one_step_error"], "GD step l", "‖ε^(l)‖₂"
    )
    res.curves["construction_bound"] = _curve(r["steps"], r["bound"], "GD step l", "η·ε")
    res.figures.append(Path(r["figure"]))


def _headline(cfg: WuConfig, table, res: Result):
    """The acceptance scalars (first N and attention, in distribution) and the comparison rows."""
    first = next(r for s, N, a, r in table if s == "in_distribution")
    for name, v in first.items():
        res.scalars[f"r2_{name}"] = v
    tf, net = first["transformer"], first["trained_network"]
    res.scalars["r2_ratio_transformer_to_trained_network"] = tf / net
    # R² differences are differences of MSE / Var(y); their ratio is the sharper comparison
    res.scalars["mse_ratio_transformer_to_trained_network"] = (1 - tf) / max(1 - net, 1e-12)
    rows = res.comparison
    for s, N, att, r in table:
        where = f"N = {N}, {att} attention, {s.replace('_', ' ')}"
        rows.append((f"R² transformer ({where})", r["transformer"], NOT_REPORTED, ""))
        rows.append((f"R² trained network ({where})", r["trained_network"], NOT_REPORTED, ""))
    rows.append(
        (
            "R² transformer / R² trained network (first row)",
            tf / net,
            "≈ 1 (finding, no number)",
            "acceptance: ≥ 0.8; the context mean alone scores "
            f"{first['context_mean'] / net:.3g} of the trained network",
        )
    )
    s = res.scalars
    if "construction_passed" in s:
        rows += [
            (
                "construction layers per GD step",
                s["construction_layers_per_step"],
                "2N + 4",
                f"N = {cfg.construction.get('depth', 3)}",
            ),
            (
                "construction max one-step error ‖ε^(l)‖ (bound η·ε)",
                s["construction_max_one_step_error"],
                "≤ η·ε",
                f"ours: bound {s['construction_max_bound']:.3g}, passed = "
                f"{bool(s['construction_passed'])}",
            ),
            (
                "construction distance to GD, fewest → most heads",
                f"{s['construction_error_fewest_heads']:.3g} → "
                f"{s['construction_error_most_heads']:.3g}",
                "falls as heads grow (heads Õ(ε⁻²))",
                f"heads {cfg.construction.get('heads_sweep', 'default sweep')}",
            ),
        ]


def _notes(cfg: WuConfig, table, res: Result) -> str:
    t = cfg.train
    head = "| setting | N | attention | " + " | ".join(PREDICTORS) + " |"
    lines = [head, "|" + "---|" * (3 + len(PREDICTORS))]
    for s, N, att, r in table:
        vals = " | ".join(f"{r[p]:.4f}" if p in r else "—" for p in PREDICTORS)
        lines.append(f"| {s.replace('_', ' ')} | {N} | {att} | {vals} |")
    sc = res.scalars
    gd = "skipped" if cfg.gd is None else f"η = {cfg.gd['step_size']}, {cfg.gd['steps']} steps"
    shift_note = ""
    N0, a0 = cfg.depths[0], cfg.attentions[0]
    shifted = [(s, r) for s, N, a, r in table if N == N0 and a == a0 and s.startswith("mixture")]
    if shifted:
        s_, r = shifted[-1]
        shift_note = (
            f"- **Shift** ({s_.replace('_', ' ')}, N = {N0}, {a0}): R² transformer "
            f"{r['transformer']:.3f}, trained network {r['trained_network']:.3f}, least squares "
            f"{r['least_squares']:.3f}, context mean {r['context_mean']:.3f}. With inputs on "
            "both sides of the origin the target's kinks matter: least squares collapses, the "
            "network trained on the prompt keeps its R², and the transformer, trained on one "
            "component only, lies in between.\n"
        )
    if t.token_format == "stacked":
        fmt_note = (
            "One token [x_i; y_i] per example, the query [x; 0] last (the construction's layout); "
            "PAPERS.md does not give the paper's format. With Garg et al.'s interleaved x/y "
            "tokens our small CPU transformers stayed at the context-mean solution (R² ≈ 0.85 "
            "after 3000 steps, whatever the depth, attention, lr or curriculum we tried), while "
            "stacked tokens reach least squares' R² in about 1000 steps (see the module's "
            "comment on PROFILES)."
        )
    else:
        fmt_note = f"`{t.token_format}` tokens (Garg et al.'s x/y interleaving)."
    if not t.positional:
        long_note = (
            "The model has no positional embedding, so a longer prompt is only more context tokens."
        )
    else:
        long_note = (
            "Positions beyond the training length are learned embeddings that were never "
            "trained (as in a GPT-2 with more positions than its training prompts)."
        )
    return f"""## R² table (pooled over prompts; one query per prompt)

{chr(10).join(lines)}

Predictors: `transformer` (trained in context), `trained_network` (the paper's baseline: an
N-layer ReLU network of width {cfg.network.get("width", 200)} trained directly on each prompt's
examples with Adam, {cfg.network.get("epochs", 100)} epochs, lr {cfg.network.get("lr", 0.01)}),
`gd_network` (GD on the target's own architecture, Theorem 1's algorithm, {gd}),
`least_squares` (linear, no intercept) and `context_mean` (the mean of the prompt's labels).

## What this shows and where it differs from the paper

- **Numbers.** PAPERS.md records the paper's settings and its finding (in-context learning
  matches training the network directly) but no R² values, so every paper cell reads
  "{NOT_REPORTED}"; we compare against the finding, not a number.
- **Headline.** R² transformer {sc["r2_transformer"]:.4f} vs trained network
  {sc["r2_trained_network"]:.4f} (ratio {sc["r2_ratio_transformer_to_trained_network"]:.3f};
  MSE ratio {sc["mse_ratio_transformer_to_trained_network"]:.2f}).
{shift_note}- **R² here is lenient.** The targets have no biases and the training inputs sit
  around −2·1, so on one component most ReLUs are either always on or always off: the target
  is nearly linear there (least squares R² {sc["r2_least_squares"]:.3f}), and pooling over prompts
  credits any predictor that gets each prompt's level right (context mean
  R² {sc["r2_context_mean"]:.3f}, i.e. {sc["r2_context_mean"] / sc["r2_trained_network"]:.2f}
  of the trained network: the 0.8 ratio alone is a weak test). The shifted mixtures, with
  points on both sides of the origin, are where the non-linearity shows.
- **Scale.** This run: d = {t.dim}, target depths {list(cfg.depths)} (width
  {t.task_params.get("width", 20)}), {cfg.n_examples} training examples, a {t.n_layer}-layer
  {t.n_head}-head {t.n_embd}-wide transformer ({", ".join(cfg.attentions)} attention) trained
  {t.steps} steps at batch {t.batch_size}, lr {t.lr}; {cfg.eval_prompts} test prompts
  ({cfg.ood_prompts} per longer-prompt or shifted-mixture row). The paper: d = 20,
  N ∈ {{3, 4, 6}}, GPT-2 12 blocks / 8 heads / 256, ReLU and softmax attention, 500k steps,
  6400 test prompts (the `full` profile). A smaller model, d and step count: a small-scale
  check of the paper's finding, not a reproduction of its scale.
- **Weights.** The targets' weights are He-scaled (std √(2/fan-in)); the paper draws N(0, I)
  weights, whose outputs grow like (K/2)^((N−1)/2). R² is scale-free and both networks are
  positively homogeneous, so only the label scale the transformer must fit differs.
- **Token format.** {fmt_note}
- **Longer prompts** ({cfg.long_examples} examples; trained on {cfg.n_examples}). {long_note}
- **Layer matching** compares each layer's ridge read-out with GD steps on the network of the
  target's architecture (similarity of errors); a trained transformer need not follow GD.
- **Construction** (Theorem 1): the one-step error is measured against η·ε with ε the error of
  the gradient computed with the construction's r̂′ (the only approximate layer), so it is
  within its bound by construction up to rounding; the informative number is how the distance
  to exact GD falls as the heads grow (figure `deep_gd_construction.png`).
"""
