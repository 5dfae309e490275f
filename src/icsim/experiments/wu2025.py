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
The report (`wu2025.md`, filled by `report`) is a pure function of the scalars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

import icsim
from icsim.algorithms.deep_gd import initial_weights
from icsim.analysis.evaluation import model_prefix_predictions
from icsim.analysis.matching import match_curves, match_layers, plot_match
from icsim.analysis.metrics import pooled_r2
from icsim.analysis.plots import plot_curves
from icsim.analysis.probes import fit_probes, layer_predictions
from icsim.analysis.report import Curve, fill_beside, judge_all
from icsim.experiments import base
from icsim.experiments import wu2025_findings as F
from icsim.experiments.wu2025_findings import PAPER, PREDICTORS
from icsim.models.formats import Stacked
from icsim.tasks.relu_network import network_forward
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
    transformer_curve_every_k: bool = True  # the transformer's R²(k) at every k, else as above
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
    # allocation, which made the fits 2× slower (sys time) at 1000 prompts per chunk. The fits'
    # random starts are drawn per chunk: another chunk gives other (equally valid) numbers.
    chunk: int = 100


# Stacked tokens [x_i; y_i] without positional embedding (why: F.FMT_NOTE, in the report).
TOKENS = dict(task="relu_network_regression", token_format="stacked", positional=False)
PROFILES = {
    # The paper (PAPERS.md §4, unverified): d = 20, x ~ N(−2·1, I), 3-, 4- and 6-layer targets,
    # GPT-2 12 blocks / 8 heads / width 256, ReLU and softmax attention, 50 examples, 500k steps;
    # test on 75 examples, shifted mixtures, 6400 prompts; depth ablation 4/6/8/10 layers at
    # 15/30/45 examples. Batch size and lr are not stated: Garg et al.'s 64 and 1e-4.
    "full": WuConfig(
        train=base.full_train(**TOKENS, warmup_steps=1000),
        # ‖x‖² ≈ 5d: η scaled by 5/d from the step size tuned at d = 5 (not tuned at d = 20)
        gd={"step_size": 0.0025, "steps": 1000},
        ablation_steps=100_000,
        chunk=1600,  # a GPU: bounded by the N = 6 networks' Adam state
        # verify_deep_gd's default sweep, named so that a smoke run can cut it
        construction={"heads_sweep": (3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 4097, 16385)},
    ),
    # 2 CPU cores in ≤ 20 min: d = 5, 3-layer targets of width 20, 20 examples (30 at test, the
    # paper's 1.5×), one 4-layer 64-wide softmax transformer, 2000 steps; 500 test prompts (300
    # per out-of-distribution row: the width-200 baseline fits dominate the time); no ablation.
    "quick": WuConfig(
        train=base.quick_train(
            **TOKENS,
            n_layer=4,
            steps=2000,
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
        matching=dict(MATCHING, probe_prompts=1024, steps=[0] + [2**i for i in range(12)]),
        construction={"heads_sweep": (3, 5, 9, 17, 33, 65, 129, 257, 513, 1025, 4097)},
    ),
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
    cur = Curriculum(enabled=n_max > n_train, dims_start=t.dim, dims_end=t.dim, dims_inc=0,
                     points_start=n_train, points_end=n_max, points_inc=0)  # fmt: skip
    params = {**t.task_params, "depth": depth}
    return replace(t, task_params=params, attention=attention, curriculum=cur, **over)


@torch.no_grad()
def baseline_predictions(batch, k: int, depth: int, width: int, cfg: WuConfig) -> dict:
    """Each baseline's prediction [B] for point k of every prompt from the first k examples."""
    B = batch.xs.shape[0]
    problem = batch.prefix(k + 1).split(k)
    chunks = [(i, min(i + cfg.chunk, B)) for i in range(0, B, cfg.chunk)]
    starts = {}

    def start(alg, m):
        """`alg`'s random start for a chunk of m prompts, the same for every such chunk (the
        seed is the algorithm's): drawn once, not per chunk (a width-200 one takes ~0.1 s)."""
        if (alg.name, m) not in starts:
            shape, x = alg.shape(problem), batch.xs
            starts[alg.name, m] = initial_weights(shape, m, alg.seed, alg.init_scale, x)
        return starts[alg.name, m]

    net = icsim.algorithms.get("relu_network_trained", depth=depth, **cfg.network)
    # one Adam per prompt, a chunk at a time (relu_network_trained is batched over problems)
    w = torch.cat([replace(net, w0=start(net, j - i)).fit(batch.prefix(k + 1).rows(i, j).split(k))
                   for i, j in chunks])  # fmt: skip
    preds = {"trained_network": network_forward(net.shape(problem), w, problem.X_query)[:, 0]}
    if cfg.gd is not None:
        gd = icsim.algorithms.get(
            "relu_network_gd", depth=depth, width=width, step_size=cfg.gd["step_size"]
        )
        # every prompt at once (a width-K network's GD is cheap: the steps' overhead dominated
        # when run chunk by chunk), each chunk from the random start it drew when it was
        gd = replace(gd, w0=torch.cat([start(gd, j - i) for i, j in chunks]))
        preds["gd_network"] = gd.predictions_at(problem, [cfg.gd["steps"]])[0, :, 0]
    ls = icsim.algorithms.get("least_squares").run(problem, 0)
    preds["least_squares"] = ls.predictions[-1, :, 0]
    preds["context_mean"] = batch.ys[:, :k].mean(1) if k > 0 else torch.zeros_like(batch.ys[:, 0])
    return preds


def _curve(x, y, x_label="in-context examples k", y_label="R² (pooled over prompts)") -> dict:
    return Curve(list(x), list(y), x_label, y_label).to_json()


def evaluate(trainer, cfg: WuConfig, depth, attention, cache, device) -> tuple[dict, dict]:
    """R² of one trained transformer and the baselines in distribution (with R²(k) curves), on
    long prompts and on shifted mixtures: (curves, scalars). `cache` holds the baselines'
    predictions, which depend on the prompts only (shared by the attentions)."""
    width, d = trainer.task.width, trainer.cfg.dim
    task_params = {k: v for k, v in trainer.cfg.task_params.items() if k != "mixture"}
    curves, scalars = {}, {}
    for i, (setting, mixture, k) in enumerate(F.eval_settings(cfg)):
        task = icsim.tasks.get(trainer.cfg.task, dim=d, **task_params, mixture=mixture)
        prompts = cfg.eval_prompts if setting == "in_distribution" else cfg.ood_prompts
        g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 1000 * depth + i)
        batch = task.sample(prompts, k + 1, generator=g, device=device)
        # every prefix for the R²(k) curve in distribution (or the baselines' k); elsewhere
        # the last one only
        full, y = setting == "in_distribution", batch.ys
        curve_ks = list(range(1, k + 1))
        if full and not cfg.transformer_curve_every_k:
            curve_ks = sorted({*cfg.curve_examples, k} & set(curve_ks))
        ks_tf = curve_ks if full else [k]
        tf = model_prefix_predictions(trainer.model, trainer.fmt, batch, chunk=256, ks=ks_tf)
        if (setting, k) not in cache:
            # the depth ablation's k only when it runs (the baselines' R²(k) beside its R²)
            extra = {*cfg.curve_examples, *(cfg.ablation_examples if cfg.layer_ablation else ())}
            ks = sorted({k} | (extra & set(range(1, k))))
            ks = ks if setting == "in_distribution" else [k]
            cache[setting, k] = {j: baseline_predictions(batch, j, depth, width, cfg) for j in ks}
        base = cache[setting, k]
        scores = {"transformer": pooled_r2(tf[:, ks_tf.index(k)], y[:, k])}
        scores.update({name: pooled_r2(p, y[:, k]) for name, p in base[k].items()})
        scalars |= {f"r2_{name}_N{depth}_{attention}_{setting}": v for name, v in scores.items()}
        if full:
            curves[f"r2_vs_examples_transformer_N{depth}_{attention}"] = _curve(
                curve_ks, [pooled_r2(tf[:, i], y[:, j]) for i, j in enumerate(curve_ks)]
            )
            for name in base[k]:
                curves[f"r2_vs_examples_{name}_N{depth}"] = _curve(
                    sorted(base), [pooled_r2(base[j][name], y[:, j]) for j in sorted(base)]
                )
    return curves, scalars


def plot_r2_curves(curves: dict, cfg: WuConfig, depth: int, out: Path) -> Path:
    sel = {
        k.removeprefix("r2_vs_examples_").removesuffix(f"_N{depth}"): v
        for k, v in curves.items()
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
        for name, c in sel.items()
    }
    title = f"R² vs in-context examples, {depth}-layer ReLU targets (d = {cfg.train.dim})"
    return plot_curves(shown, out / f"r2_vs_examples_N{depth}.png", title=title)


def shift_curves(cfg: WuConfig, scalars: dict, depth: int, out: Path):
    """R² against the weight w₂ of the N(+2·1, I) component, per predictor (the transformer per
    attention; a baseline, the same for every attention, once): (curves, {}, figure)."""
    mixes = [(1.0, 0.0), *cfg.mixtures]
    curves = {}
    for att in cfg.attentions:
        for w1, w2 in mixes:
            setting = "in_distribution" if (w1, w2) == (1.0, 0.0) else f"mixture_{w1:g}_{w2:g}"
            for pred in PREDICTORS:
                key = f"r2_{pred}_N{depth}_{att}_{setting}"
                label = f"{pred} ({att})" if pred == "transformer" else pred
                c = curves.setdefault(label, {"x": [], "y": []})
                if key in scalars and w2 not in c["x"]:
                    c["x"].append(w2)
                    c["y"].append(scalars[key])
    shown = {}
    for name, c in curves.items():
        if c["x"]:
            x, y = zip(*sorted(zip(c["x"], c["y"])))  # by w₂
            shown[name] = _curve(x, y, "weight w₂ of the N(+2·1, I) component", "R²")
    title = f"R² under input shift, {depth}-layer targets ({cfg.n_examples} examples)"
    fig = plot_curves(shown, out / f"r2_vs_shift_N{depth}.png", title=title)
    keys = {name: f"r2_vs_shift_{name.replace(' (', '_').rstrip(')')}_N{depth}" for name in shown}
    return {keys[name]: c for name, c in shown.items()}, {}, fig


def layer_matching(trainer, cfg: WuConfig, depth, tag, out: Path, device):
    """Per-layer ridge read-outs of the trained model matched (similarity of errors, Fu et al.
    2024) against GD steps on the target's architecture, Theorem 1's algorithm:
    (curves, scalars, figure)."""
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
    probes = fit_probes(trainer.model, fmt, trainer.task, n_prompts=m["probe_prompts"],
                        n_points=n_points, generator=g, device=device)  # fmt: skip
    batch = trainer.task.sample(m["prompts"], n_points, generator=g, device=device)
    layers = layer_predictions(trainer.model, fmt, batch, probes)  # [L+1, B, queries]
    step_size, steps = (cfg.gd or GD)["step_size"], list(m["steps"])
    params = {"depth": depth, "width": trainer.task.width, "step_size": step_size}
    spec = {"gd": {"algorithm": "relu_network_gd", "params": params, "steps": steps}}
    # stacked: the queries after the n context examples; interleaved: every prefix
    gd = match_layers(layers, batch, spec, n_context=n if stacked else None)["gd"]
    step, sim = match_curves(gd, "best-matching GD step")
    curves = {
        f"matched_gd_step_{tag}": step.to_json(),
        f"matched_gd_similarity_{tag}": sim.to_json(),
    }
    scalars = {f"matched_gd_step_last_layer_{tag}": gd["matched_step"][-1]}
    scalars[f"matched_gd_similarity_last_layer_{tag}"] = gd["best_similarity"][-1]
    xlabel = f"GD step on the {depth}-layer network (η = {step_size:g})"
    title = f"similarity of errors: layers vs GD steps ({tag})"
    fig = plot_match(gd, out / f"layer_matching_{tag}.png", xlabel=xlabel, title=title,
                     ylabel="transformer layer")  # fmt: skip
    return curves, scalars, fig


def ablation(cfg: WuConfig, out: Path, device: str, quiet: bool):
    """R² of transformers of 4/6/8/… layers at 15/30/45 examples (first N and attention):
    (curves, scalars, figure)."""
    depth, attention = cfg.depths[0], cfg.attentions[0]
    steps = cfg.ablation_steps or cfg.train.steps
    curves, scalars = {}, {}
    for L in cfg.layer_ablation:
        tcfg = base.with_device(train_config(cfg, depth, attention, n_layer=L, steps=steps), device)
        trainer = Trainer(tcfg, out / f"train-ablation-L{L}", quiet=quiet)
        trainer.train()
        g = torch.Generator(device=device).manual_seed(cfg.eval_seed + 1000 * depth)
        n = cfg.n_examples + 1
        batch = trainer.task.sample(cfg.eval_prompts, n, generator=g, device=device)
        ks = list(cfg.ablation_examples)
        tf = model_prefix_predictions(trainer.model, trainer.fmt, batch, chunk=256, ks=ks)
        for i, k in enumerate(ks):
            v = pooled_r2(tf[:, i], batch.ys[:, k])
            scalars[f"r2_transformer_layers{L}_k{k}"] = v
            c = curves.setdefault(f"k = {k}", _curve([], [], "transformer layers", "R²"))
            c["x"].append(L)
            c["y"].append(v)
    fig = plot_curves(curves, out / "ablation_layers.png", title="R² vs transformer depth")
    return {f"ablation_r2_{name.replace(' = ', '')}": c for name, c in curves.items()}, scalars, fig


def construction(params: dict, out: Path):
    """Theorem 1's construction checked against GD (`verify_deep_gd`): (curves, scalars, figure)."""
    from icsim.analysis.construction_figures import deep_gd_measures
    from icsim.constructions.deep_gd import verify_deep_gd

    r = verify_deep_gd(**params, figure=out / "deep_gd_construction.png")
    return *deep_gd_measures(r), Path(r["figure"])


def headline(cfg: WuConfig, scalars: dict) -> dict:
    """The acceptance scalars: the first N and attention, in distribution."""
    tag = f"N{cfg.depths[0]}_{cfg.attentions[0]}_in_distribution"
    out = {f"r2_{p}": scalars[f"r2_{p}_{tag}"] for p in PREDICTORS if f"r2_{p}_{tag}" in scalars}
    tf, net = out["r2_transformer"], out["r2_trained_network"]
    out["r2_ratio_transformer_to_trained_network"] = tf / net
    # R² differences are differences of MSE / Var(y); their ratio is the sharper comparison
    out["mse_ratio_transformer_to_trained_network"] = (1 - tf) / max(1 - net, 1e-12)
    return out


# --- the report: a pure function of (cfg, scalars) -----------------------------------------------


def report(cfg: WuConfig, scalars: dict) -> tuple[list, str]:
    """(comparison rows, notes) of the report, from the measured numbers alone."""
    s, t = scalars, cfg.train
    verdicts = judge_all(F.findings(cfg), s)
    N0, a0 = cfg.depths[0], cfg.attentions[0]
    shift = ""
    if cfg.mixtures:
        w1, w2 = cfg.mixtures[-1]
        tag = f"N{N0}_{a0}_mixture_{w1:g}_{w2:g}"
        r = {p: s.get(f"r2_{p}_{tag}", float("nan")) for p in PREDICTORS}
        shift = F.SHIFT_NOTE.format(w1=w1, w2=w2, N=N0, att=a0, **r)
    gd = "skipped" if cfg.gd is None else f"η = {cfg.gd['step_size']}, {cfg.gd['steps']} steps"
    net = {f"net_{k}": v for k, v in {**NETWORK, **cfg.network}.items()}
    text = {**asdict(t), **asdict(cfg), **net, "table": F.r2_table(cfg, s), "shift_note": shift}
    text |= {"gd": gd, "not_reported": F.NOT_REPORTED, "depths": list(cfg.depths)}
    text |= {"mean_over_net": s["r2_context_mean"] / s["r2_trained_network"]}
    text |= {
        "target_width": t.task_params.get("width", 20),
        "attentions": ", ".join(cfg.attentions),
    }
    text["fmt_note"] = F.FMT_NOTE if t.token_format == "stacked" else f"`{t.token_format}` tokens"
    text["long_note"] = F.LONG_NOTE[bool(t.positional)]
    rows = [c.row(s) for c in F.comparisons(cfg)]
    return rows, fill_beside(__file__, {**s, **text}, verdicts)


@base.EXPERIMENTS.register("wu2025-deep-optimizers")
class Wu2025(base.Experiment):
    """Transformers train an N-layer ReLU network in context (Wu et al. 2025)

    Wu, Su, Hu, Song, Liu, *Transformers are Deep Optimizers: Provable In-Context Learning for Deep
    Model Training*, ICML 2025 (arXiv 2411.16549)"""

    cost = {
        "quick": "~3 min on 2 CPU cores (171 s at 1 thread, 116 s at 2, measured 2026-12-02)",
        "full": "~25 GPU-hours (6 models x 500k steps + ablation)",
    }
    profiles = PROFILES

    # `--profile full --smoke`: evaluation sizes and non-TrainConfig training cut to the minimum
    # (each TrainConfig is cut by experiments.base.smoke_cuts); model and prompt shapes stay.
    # One target depth, ablation depth and mixture, and one k on the baselines' R²(k) curve:
    # every stage runs once (both attentions, the long prompts, the ablation, the matching).
    def smoke(self, cfg: WuConfig) -> dict:
        return {
            "ablation_steps": 2,
            "eval_prompts": 8,
            "ood_prompts": 8,
            "network.epochs": 1,
            "gd.steps": 2,
            "matching.prompts": 8,
            "matching.probe_prompts": 64,
            "matching.steps": (0, 1, 2),
            "construction.heads_sweep": (3, 5),
            "depths": base.ends(cfg.depths),
            "layer_ablation": cfg.layer_ablation[:1],
            "mixtures": cfg.mixtures[-1:],
            "curve_examples": cfg.curve_examples[:1],
            "transformer_curve_every_k": False,
        }

    def run(self, cfg: WuConfig, out: Path, device: str, quiet: bool) -> base.Result:
        curves, scalars, figs = {}, {}, []

        def add(c, s, fig=None):
            curves.update(c)
            scalars.update(s)
            if fig is not None:
                figs.append(fig)

        for depth in cfg.depths:
            cache = {}  # baselines depend on the prompts only: shared by the attentions
            for attention in cfg.attentions:
                tcfg = base.with_device(train_config(cfg, depth, attention), device)
                trainer = Trainer(tcfg, out / f"train-N{depth}-{attention}", quiet=quiet)
                final, tag = trainer.train(), f"N{depth}_{attention}"
                scalars[f"final_train_loss_{tag}"] = final["loss"]
                add(*evaluate(trainer, cfg, depth, attention, cache, device))
                if cfg.matching is not None:
                    add(*layer_matching(trainer, cfg, depth, tag, out, device))
            figs.append(plot_r2_curves(curves, cfg, depth, out))
            if cfg.mixtures:
                add(*shift_curves(cfg, scalars, depth, out))
        if cfg.layer_ablation:
            add(*ablation(cfg, out, device, quiet))
        if cfg.construction is not None:
            add(*construction(cfg.construction, out))
        scalars.update(headline(cfg, scalars))
        comparison, notes = report(cfg, scalars)
        return base.Result(curves, scalars, dict(PAPER), figs, comparison, notes=notes)
