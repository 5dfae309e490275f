"""`icsim train` and `icsim eval`: the run, the preset a bare run takes on a CPU, the estimate
before a long run, what the end of a run says, and the evaluation table."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from icsim.errors import InputError


# -- train ----------------------------------------------------------------------------------
def cmd_train(c) -> int:
    from icsim.training import TrainingDiverged

    try:
        return _train(c)
    except TrainingDiverged as e:  # not a usage error (exit 1), but no traceback either
        if c.debug:
            raise
        print(f"icsim: {e}", file=sys.stderr)
        return 1


def _train_config(c):
    """The TrainConfig of the parsed flags, with every check of the Python API."""
    from icsim.training import Curriculum, TrainConfig

    values = {f.name: getattr(c, f.name) for f in fields(TrainConfig)}
    values["curriculum"] = Curriculum(**asdict(values["curriculum"]))
    return TrainConfig(**values)


def _given_train_flags(c) -> list[str]:
    """Flags set on the command line (values that differ from the defaults)."""
    default = type(c)()
    given = [
        f.name
        for f in fields(c)
        if f.name not in ("debug", "quiet", "resume", "yes")
        and getattr(c, f.name) != getattr(default, f.name)
    ]
    return ["--" + n.replace("_", "-") for n in given]


def _train(c) -> int:
    from icsim import rundir
    from icsim.training import Trainer

    if c.resume:
        given = _given_train_flags(c)
        if given:
            raise InputError(
                f"--resume continues a run with its saved config; drop {', '.join(given)}."
            )
        trainer = Trainer.resume(c.resume, quiet=c.quiet)
        return _finished(c.resume, trainer.train())
    cfg = _train_config(c)
    if c.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {c.seeds}.")
    _check_train_fits(cfg, c.seeds)
    _check_train_time(cfg, c, getattr(type(c), "_implied_preset", None))
    out = rundir.check_out(c.out)
    from icsim.training.distributed import world

    if c.seeds == 1:
        if world()[0] > 0:  # under torchrun, rank 0 alone prepares and writes `out`
            trainer = Trainer(cfg, out, quiet=c.quiet, overwrite=c.overwrite)
        else:
            with rundir.replacing(out, overwrite=c.overwrite):  # the old run stays until it starts
                trainer = Trainer(cfg, out, quiet=c.quiet, overwrite=True)
        return _finished(out, trainer.train())
    from dataclasses import replace

    from icsim.training.multiseed import VECTORISABLE, MultiSeedTrainer

    seed_list = [cfg.seed + i for i in range(c.seeds)]
    if cfg.model in VECTORISABLE:  # K models in one vectorised step, one run dir per seed
        with rundir.replacing(out, overwrite=c.overwrite):
            multi = MultiSeedTrainer(cfg, seed_list, out, quiet=c.quiet, overwrite=True)
        result = multi.train()
        for d, loss in zip(multi.run_dirs, result["loss"]):
            _finished(d, {"step": result["step"], "loss": loss}, next_step=False)
        return _next(out)
    with rundir.replacing(out, overwrite=c.overwrite):
        pass
    for s in seed_list:  # e.g. the LSTM: one run after another, the same layout
        run_dir = out / f"seed_{s}"
        trainer = Trainer(replace(cfg, seed=s), run_dir, quiet=c.quiet)
        _finished(run_dir, trainer.train(), next_step=False)
    return _next(out)


def _finished(run_dir, result: dict, next_step: bool = True) -> int:
    """The end of a training run: one JSON line on stdout (for scripts), and for a person on
    stderr where the run is, its final loss and the command to run next."""
    print(json.dumps({"run_dir": str(run_dir), **result}), flush=True)
    loss = result["loss"]
    loss = f"{loss:.4g}" if isinstance(loss, float) else str(loss)
    print(
        f"icsim: trained to step {result['step']} in {run_dir} (final training loss {loss}; "
        "the log is metrics.jsonl/metrics.csv, the checkpoints checkpoints/)",
        file=sys.stderr,
    )
    return _next(run_dir) if next_step else 0


def _next(run_dir) -> int:
    print(
        f"icsim: next: icsim eval {run_dir} (error against the number of in-context examples, "
        "beside the classical baselines)",
        file=sys.stderr,
    )
    return 0


def _check_train_time(cfg, c, implied: str | None) -> None:
    """Say which preset a bare `icsim train` runs, and stop before a run estimated at over an
    hour on this device unless the user agrees (--yes, or no terminal to ask: then logged)."""
    from icsim import estimate

    if estimate.step_flops(cfg) * cfg.steps * c.seeds < 1e12:  # seconds on any device
        return
    secs = estimate.train_seconds(cfg, c.seeds)
    if implied and not c.quiet:
        print(
            f"icsim: no size flag on a CPU: the {implied} preset ({cfg.n_layer} layers, width "
            f"{cfg.n_embd}, {cfg.steps:,} steps; about {estimate.human(secs)} here). "
            "--preset garg2022 trains at the paper's scale.",
            file=sys.stderr,
        )
    if secs > estimate.HOUR:
        what = (
            f"this run ({c.seeds} x {cfg.n_layer} layers, width {cfg.n_embd}, {cfg.steps:,} steps "
            f"of batch {cfg.batch_size})"
        )
        _confirm_long(
            what, secs, cfg.device,
            "--preset cpu-small (minutes), or fewer --steps / a smaller --n-layer or --n-embd",
            c.yes,
        )  # fmt: skip


def _confirm_long(what: str, seconds: float, device: str, smaller: str, yes: bool) -> None:
    """Print the estimate and how to get a smaller run; go on with --yes or without a terminal
    (the warning stays in the log), else ask."""
    from icsim import estimate

    where = "this CPU" if device == "cpu" else device
    how = " (from its FLOPs and a measured matmul rate)" if seconds < float("inf") else ""
    print(
        f"icsim: warning: {what} is estimated at {estimate.human(seconds)} on {where}{how}. "
        f"For a smaller run: {smaller}.",
        file=sys.stderr,
        flush=True,
    )
    if yes or not sys.stdin.isatty():
        print("icsim: starting anyway (--yes, or no terminal to ask).", file=sys.stderr)
        return
    answer = input("Start it anyway? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise InputError("not started (answered no); nothing was written.")


def _check_train_fits(cfg, seeds: int = 1) -> None:
    """Seeds inside the generator's range, and the memory of `seeds` models' training (weights,
    gradients, AdamW's two moments, activations of one batch) within what the device has free."""
    from icsim import _validate as V

    V.device(cfg.device)
    V.seed("seed", cfg.seed + seeds - 1)
    params, tokens = _model_size(cfg)
    # 4 float32 copies per weight (weight, grad, AdamW m and v); per layer and token ~16 widths of
    # saved activations, plus the attention scores and their softmax (GPT-2's block)
    acts = cfg.batch_size * cfg.n_layer * (16 * tokens * cfg.n_embd + 2 * cfg.n_head * tokens**2)
    need = 4 * seeds * (4 * params + acts)
    V.check_memory(
        need,
        cfg.device,
        f"training {seeds} x {params:,} parameters on batches of {cfg.batch_size} x {tokens} "
        "tokens",
        "lower --batch-size, --n-embd, --n-layer, --dim or the prompt length",
    )


def _model_size(cfg) -> tuple[int, int]:
    """(parameters, tokens per prompt) of `cfg`'s model, built on the meta device (no memory)."""
    import torch

    from icsim.models import build
    from icsim.training.trainer import model_config

    mc = model_config(cfg)
    with torch.device("meta"):
        model = build(cfg.model, mc)
    return sum(p.numel() for p in model.parameters()), mc.max_positions


# -- eval -----------------------------------------------------------------------------------
def cmd_eval(c) -> int:
    from icsim import _validate as V
    from icsim.training.trainer import resolve_device

    V.positive_int("--prompts", c.prompts)
    V.seed("--seed", c.seed)
    device = str(resolve_device(V.device(c.device)))
    runs = trained_runs(Path(c.run_dir))
    if len(runs) > 1 or runs[0] != Path(c.run_dir):
        names = ", ".join(str(r.relative_to(c.run_dir)) for r in runs)
        print(f"icsim: {c.run_dir} holds {len(runs)} trained model(s): {names}", file=sys.stderr)
    for run in runs:
        _eval_one(run, c, device)
    return 0


def trained_runs(path: Path) -> list[Path]:
    """`path` if it is an `icsim train` run, else the `icsim train`-style runs inside it (a
    reproduction's trained models); [path] when there is none (its error then says why)."""
    from icsim.training import checkpoint as ckpt

    if not path.is_dir() or ckpt.latest_intact(path) is not None:
        return [path]
    found = []
    for config in sorted(path.rglob("config.json")):
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and isinstance(saved.get("train"), dict):
            if ckpt.latest_intact(config.parent) is not None:
                found.append(config.parent)
    return found or [path]


def _eval_one(run_dir: Path, c, device: str) -> None:
    import warnings

    import torch

    from icsim import _validate as V
    from icsim import provenance, rundir
    from icsim.analysis import baseline_predictions, evaluate_against_baselines
    from icsim.analysis.evaluation import model_prefix_predictions
    from icsim.analysis.plots import plot_curves
    from icsim.experiments.garg2022 import BASELINES
    from icsim.training import checkpoint as ckpt
    from icsim.training import load_trained

    out = run_dir / "eval"
    if out.exists() and not c.overwrite:
        raise InputError(
            f"{out} holds an earlier evaluation; pass --overwrite to replace it "
            "(or copy it away first)."
        )
    with warnings.catch_warnings(record=True) as skipped:  # corrupt newer checkpoints, named
        warnings.simplefilter("always", ckpt.CheckpointSkipped)
        found = ckpt.latest_intact(run_dir) if run_dir.is_dir() else None
    model, fmt, cfg = load_trained(run_dir, device)
    skipped = [str(w.message) for w in skipped if issubclass(w.category, ckpt.CheckpointSkipped)]
    for s in skipped:
        print(f"icsim: warning: {s}; evaluating an older checkpoint.", file=sys.stderr)
    params, tokens = _model_size(cfg)
    acts = c.prompts * (16 * tokens * cfg.n_embd + 2 * cfg.n_head * tokens**2)
    V.check_memory(
        4 * (params + acts),
        device,
        f"evaluating {c.prompts} prompts of {tokens} tokens",
        "lower --prompts",
    )
    task = _build_task(cfg)
    if getattr(c, "ood", False):
        from icsim.tasks.ood import check_task

        check_task(task)  # before any work: one clear error for a task it does not apply to
    g = torch.Generator(device=device).manual_seed(c.seed)
    batch = task.sample(c.prompts, cfg.n_points, generator=g, device=device)
    preds = {"transformer": model_prefix_predictions(model, fmt, batch)}
    if cfg.task in ("linear_regression", "sparse_linear_regression"):
        preds.update(baseline_predictions(batch, BASELINES))
    curves = evaluate_against_baselines(batch, preds, seed=c.seed)
    out.mkdir(exist_ok=True)
    record = {
        "checkpoint": found[0].name if found else None,
        "checkpoint_step": found[1][2].get("step") if found else None,
        "skipped_checkpoints": skipped,
        "run_seed": cfg.seed,
        "eval_seed": c.seed,
        "prompts": c.prompts,
        "device": device,
        "icsim_version": _version(),
        "git_commit": provenance.git_commit(),
    }
    title = f"{cfg.task}, d = {cfg.dim} ({run_dir.name})"
    if getattr(c, "ood", False):
        from icsim.analysis import ood

        record["ood"] = ood.evaluate_ood(
            model, fmt, task, cfg.n_points, prompts=c.prompts, seed=c.seed, device=device
        )
        ood.plot_ood(record["ood"], out, cfg.dim, title)
    rundir.write_json(out / "metrics.json", {**record, "curves": curves})
    plot_curves(
        curves, out / "error_vs_examples.png", vline=cfg.dim, vline_label="k = d", title=title
    )
    print(f"{run_dir} ({record['checkpoint']}): squared error / d on {c.prompts} prompts, "
          "mean [95% bootstrap interval], by k in-context examples")  # fmt: skip
    print(curve_table(curves))
    if "ood" in record:
        print(f"out of distribution (Garg et al. 2022, §4): squared error / d, mean over "
              f"{c.prompts} prompts; every k in {out}/metrics.json and ood_*.png")  # fmt: skip
        print(ood.summary_table(record["ood"], cfg.dim))
    print(f"wrote {out / 'metrics.json'} and {out / 'error_vs_examples.png'}")


def curve_table(curves: dict) -> str:
    """Curves sharing x as a text table: a header (k, each curve), one row per x, each cell
    `mean [low, high]` where the curve has an interval."""
    names = list(curves)
    first = curves[names[0]]

    def cell(c, i) -> str:
        if c.get("y_low") is None:
            return f"{c['y'][i]:.3g}"
        return f"{c['y'][i]:.3g} [{c['y_low'][i]:.3g}, {c['y_high'][i]:.3g}]"

    rows = [["k", *names]]
    rows += [[str(x), *(cell(curves[n], i) for n in names)] for i, x in enumerate(first["x"])]
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _build_task(cfg):
    from icsim.training.trainer import build_task

    return build_task(cfg)


def _version() -> str:
    import icsim

    return icsim.__version__
