"""Reproductions: each experiment is one module registering an `Experiment` with a `quick`
(2 CPU cores, minutes) and a `full` (the paper's settings, a GPU) profile. `reproduce` writes
config.json, metrics.json (DESIGN.md's shape), PNG figures and report.md into one directory."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import icsim
from icsim import progress, provenance, rundir
from icsim.analysis.plots import plot_training_losses
from icsim.analysis.report import Comparison, findings_markdown, markdown_table
from icsim.catalog import docstring_header
from icsim.errors import InputError
from icsim.experiments.overrides import (  # noqa: F401 -- experiments import these from here
    SMOKE_BATCH,
    SMOKE_STEPS,
    _asdict,
    apply_overrides,
    ends,
    smoke_cuts,
)
from icsim.registry import Registry


class _Experiments(Registry):
    """`@EXPERIMENTS.register(name)` also sets the class's `name`: the name is written once."""

    def register(self, name: str, **meta):
        add = super().register(name, **meta)

        def deco(cls):
            cls.name = name
            return add(cls)

        return deco


EXPERIMENTS = _Experiments("experiment", package="icsim.experiments")


@dataclass
class Result:
    """What an experiment measured: curves and scalars (ours), the paper's figures, and the
    report's sections (markdown) written by the experiment."""

    curves: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)
    paper: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    # `Comparison`s (or, until every experiment has moved, rows (quantity, ours, paper, note))
    comparison: list = field(default_factory=list)
    verdicts: list = field(default_factory=list)  # `Verdict`s, judged from `scalars`
    notes: str = ""


class Experiment:
    """A reproduction. A subclass's docstring is its title (first paragraph) and the paper it
    reproduces (second paragraph, the citation); `@EXPERIMENTS.register(name)` names it."""

    name: str = ""
    title: str = ""
    citation: str = ""
    profiles: dict = {}
    # what a run of each profile costs, as measured or estimated (shown by `icsim list -v`,
    # `icsim describe` and `icsim reproduce --help`), e.g. {"quick": "~5 min on 2 CPU cores",
    # "full": "~7 GPU-hours"}; a literal dict, read from the source without importing the module
    cost: dict = {}
    # the dtype its prompts are drawn in: with the same seed, float32 and float64 draws differ
    prompt_dtype: str = "float32"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        title, citation = docstring_header(cls.__dict__.get("__doc__"))
        cls.title = cls.__dict__.get("title", title)
        cls.citation = cls.__dict__.get("citation", citation)

    def profile(self, name: str):
        if name not in self.profiles:
            from icsim.errors import unknown_name

            raise unknown_name(f"profile of {self.name}", name, self.profiles)
        return self.profiles[name]

    def run(self, cfg, out: Path, device: str, quiet: bool) -> Result:
        raise NotImplementedError


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def comparison_rows(result: Result) -> list[tuple]:
    """The report table's rows: `Comparison`s are looked up in the result's scalars/curves."""
    return [
        c.row(result.scalars, result.curves) if isinstance(c, Comparison) else tuple(c)
        for c in result.comparison
    ]


def write_report(exp: Experiment, profile: str, result: Result, meta: dict, out: Path) -> None:
    (out / "report.md").write_text(report_markdown(exp, profile, result, meta, out))


def report_markdown(exp: Experiment, profile: str, result: Result, meta: dict, out: Path) -> str:
    lines = [
        f"# {exp.title}",
        "",
        f"Reproduction `{exp.name}` of {exp.citation}.",
        "",
        f"- profile: `{profile}`; device: {meta['device']}; wall time: "
        f"{meta['wall_seconds']:.0f} s (training {meta.get('training_seconds', 0):.0f} s); "
        f"icsim {meta['icsim_version']} at commit "
        f"`{meta['git_commit']}`",
        f"- command: `icsim reproduce {exp.name} --profile {profile} --out {out}`",
        "",
        "## Our numbers beside the paper's",
        "",
        markdown_table(
            ["quantity", "ours", "paper", "note"],
            [(q, _fmt(o), _fmt(p), n) for q, o, p, n in comparison_rows(result)],
        ),
    ]
    if result.verdicts:
        lines += ["", "## The paper's findings, judged from our numbers", ""]
        lines += [findings_markdown(result.verdicts)]
    lines += ["", "## Figures", ""]
    lines += [f"![{Path(f).stem}]({Path(f).name})" for f in result.figures]
    if result.notes:
        lines += ["", result.notes.strip()]
    lines += ["", "All numbers above are in `metrics.json`; the settings are in `config.json`."]
    return "\n".join(lines) + "\n"


def reproduce(
    name: str,
    profile: str = "quick",
    out: str | Path | None = None,
    *,
    device: str = "cpu",
    overwrite: bool = False,
    quiet: bool = False,
    config=None,
    overrides: dict | None = None,
    smoke: bool = False,
) -> Path:
    """Run experiment `name` at `profile` (or an explicit `config`) and write its outputs.

    `overrides` maps dotted field names of the profile's config to values
    (`{"train.steps": 200}`); `smoke` cuts training steps and evaluation sizes to the minimum
    (TrainConfig's steps and batch, the experiment's `smoke` cuts) at the profile's model and
    prompt shapes. Both are validated before the output directory is touched and recorded in
    config.json."""
    exp = EXPERIMENTS.get(name)
    cfg = config if config is not None else exp.profile(profile)
    cuts = smoke_cuts(exp, cfg) if smoke else {}
    cfg = apply_overrides(cfg, {**cuts, **(overrides or {})})
    if device != "cpu":
        from icsim.training.trainer import resolve_device

        resolve_device(device)
    out = Path("runs") / f"{name}-{profile}{'-smoke' if smoke else ''}" if out is None else out
    with rundir.replacing(out, overwrite=overwrite) as out:
        meta = _meta(exp, profile, device)
        record = {"overrides": dict(overrides or {}), "smoke": smoke}
        # what the seed reproduces: prompts are drawn by generators on the run's device, in
        # this dtype
        record["sampling"] = {
            "generator_device": torch.device(device).type,
            "prompt_dtype": exp.prompt_dtype,
        }
        rundir.write_json(
            out / "config.json",
            {**meta, **record, "config": _asdict(cfg), "versions": provenance.versions()},
        )
    return _run(exp, profile, cfg, out, device, quiet, meta)


def _run(exp: Experiment, profile: str, cfg, out: Path, device: str, quiet: bool, meta) -> Path:
    """Run the experiment into `out` (holding the lock on its config.json, so a second process
    resuming it refuses), then write metrics.json and report.md."""
    from icsim.training import run as runs
    from icsim.training.errors import TrainingInterrupted

    held = runs.lock(out)
    try:
        t0 = time.perf_counter()
        try:
            with progress.reproduction(exp.name, quiet) as rep:
                result = exp.run(cfg, out, device, quiet)
                progress.stage("training-loss figures, metrics.json and report.md")
                result.figures = [*result.figures, *plot_training_losses(out)]
        except TrainingInterrupted:  # SIGTERM/SIGINT: the stage in training saved a checkpoint
            print(
                f"icsim: continue the reproduction with: icsim reproduce --resume {out}",
                file=sys.stderr,
            )
            raise
        meta["wall_seconds"] = time.perf_counter() - t0
        # the rest (evaluation, probes, baselines, figures) is wall_seconds - training_seconds
        meta["training_seconds"] = rep.training_seconds
        metrics = {
            **meta,
            "curves": result.curves,
            "scalars": result.scalars,
            "paper": result.paper,
        }
        rundir.write_json(out / "metrics.json", metrics)
        write_report(exp, profile, result, meta, out)
    finally:
        if held is not None:
            held.close()
    return out


def resume(
    out: str | Path,
    *,
    device: str | None = None,
    quiet: bool = False,
    config=None,
    experiment: str | None = None,
) -> Path:
    """Continue the reproduction in `out` (killed, preempted) with the experiment, profile,
    overrides and smoke setting in its config.json: trained models that finished load their
    final checkpoint, an interrupted training resumes from its newest intact checkpoint, the
    stages after it run, and metrics.json equals an uninterrupted run's (same seed, CPU).
    Stages that train nothing (evaluations, curves) are computed again. A finished
    reproduction (metrics.json written) is left as it is. `config` is the explicit config of a
    reproduction started with `reproduce(config=...)`; it must equal the recorded one;
    `experiment`, if given, must be the one recorded."""
    from icsim.training import run as runs

    out = rundir.check_out(out)
    saved = _reproduction_record(out)
    exp = EXPERIMENTS.get(saved["experiment"])
    if experiment is not None and experiment != exp.name:
        raise InputError(
            f"cannot resume {out} as {experiment}: it is a reproduction of {exp.name}; drop the "
            "name or give that one."
        )
    profile = saved["profile"]
    if config is None:
        cfg = exp.profile(profile)
        cuts = smoke_cuts(exp, cfg) if saved.get("smoke") else {}
        cfg = apply_overrides(cfg, {**cuts, **(saved.get("overrides") or {})})
    else:
        cfg = config
    if _json(_asdict(cfg)) != _json(saved["config"]):
        raise InputError(
            f"cannot resume {out}: {exp.name}'s {profile!r} settings are no longer those it was "
            "started with (icsim changed since); start it again with --overwrite."
        )
    recorded = (saved.get("sampling") or {}).get("generator_device", "cpu")
    device = recorded if device is None else device
    if torch.device(device).type != recorded:
        raise InputError(
            f"cannot resume {out} on device {device!r}: it was started on {recorded!r} and "
            f"its random draws depend on the device; resume it with --device {recorded}."
        )
    if device != "cpu":
        from icsim.training.trainer import resolve_device

        resolve_device(device)
    if (out / "metrics.json").is_file():
        if not quiet:
            print(f"icsim: {out} is a finished reproduction: nothing to resume.", file=sys.stderr)
        return out
    with runs.resuming(out):
        return _run(exp, profile, cfg, out, device, quiet, _meta(exp, profile, device))


def _meta(exp: Experiment, profile: str, device: str) -> dict:
    """What a reproduction records about itself (config.json, metrics.json, report.md)."""
    return {
        "experiment": exp.name,
        "profile": profile,
        "device": provenance.device_name(device),
        "icsim_version": icsim.__version__,
        "git_commit": provenance.git_commit(),
    }


def _reproduction_record(out: Path) -> dict:
    """The config.json of the reproduction in `out`; an InputError if `out` is not one."""
    what = "--resume continues a directory written by icsim reproduce"
    if not out.is_dir():
        raise InputError(f"cannot resume {out}: no such directory; {what}.")
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        saved = None
    if not rundir.made_by_icsim(out) or not isinstance(saved, dict):
        raise InputError(
            f"cannot resume {out}: it is not an icsim reproduction (no {rundir.MARKER} marker "
            f"and readable config.json); {what}."
        )
    if "train" in saved and "experiment" not in saved:
        raise InputError(
            f"cannot resume {out} as a reproduction: it is an icsim train run; continue it "
            f"with icsim train --resume {out}."
        )
    if not isinstance(saved.get("experiment"), str) or not isinstance(saved.get("config"), dict):
        raise InputError(
            f"cannot resume {out}: its config.json names no experiment and config; {what}."
        )
    return saved


def _json(obj):
    """`obj` as it reads back from config.json (tuples become lists)."""
    return json.loads(json.dumps(obj, default=rundir._jsonable))


def with_device(train_cfg, device: str):
    """A TrainConfig on `device`, with GPU fast paths on when the device is a GPU."""
    gpu = torch.device(device).type == "cuda"
    return replace(
        train_cfg, device=device, amp=train_cfg.amp and gpu, compile=train_cfg.compile and gpu
    )


# What the training runs of the profiles share. "full": Garg et al. 2022's GPT-2 run (TrainConfig's
# defaults: 12 layers / 8 heads / width 256, d = 20, batch 64, Adam 1e-4, 500k steps) on a GPU.
# "quick": 2 CPU cores, d = 5, 4 heads, width 64, lr 1e-3 with warm-up and cosine decay.
FULL_TRAIN = dict(steps=500_000, log_every=500, checkpoint_every=10_000, amp=True, compile=True)
QUICK_TRAIN = dict(
    dim=5, n_head=4, n_embd=64, batch_size=64, lr=1e-3, warmup_steps=200, schedule="cosine",
    log_every=100, checkpoint_every=1000,
)  # fmt: skip


def full_train(**changes):
    """The TrainConfig of a "full" profile: `FULL_TRAIN` with `changes`."""
    from icsim.training import TrainConfig

    return TrainConfig(**{**FULL_TRAIN, **changes})


def quick_train(**changes):
    """The TrainConfig of a "quick" profile: `QUICK_TRAIN` with `changes`."""
    from icsim.training import TrainConfig

    return TrainConfig(**{**QUICK_TRAIN, **changes})


def check_profile(value: str) -> str:
    if value not in ("quick", "full"):
        raise InputError(f"profile must be 'quick' or 'full', got {value!r}.")
    return value
