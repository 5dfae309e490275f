"""The `icsim` command line: list, train, eval, reproduce, construct, sweep.

One tyro parser with a subcommand per verb: each flag is a typed dataclass field with its own
one-line help. Values are validated after parsing by the same code as the Python API, so a
user error (bad name, value or file) prints one line and exits with code 2; `--debug` shows
the traceback instead. `icsim --help` and the help of every command but `train`/`reproduce`
import no torch (only the command being run is built).
"""

from __future__ import annotations

import errno
import json
import sys
import types
from dataclasses import MISSING, asdict, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

from icsim.errors import InputError, did_you_mean

EXIT_USAGE = 2
# a full, read-only or forbidden disk: the user's to fix, so one message instead of a traceback
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}

COMMANDS = {
    "list": "List tasks, algorithms, models, token formats, constructions and experiments.",
    "train": "Train a model on an in-context task (flags override --config).",
    "eval": "Error against the number of in-context examples for a trained run.",
    "reproduce": "Reproduce a paper's experiment: config.json, metrics.json, figures, report.md "
    "(`icsim reproduce --resume DIR` continues a killed one).",
    "construct": "Build a hand-made transformer and check it against its algorithm.",
    "sweep": "Run a grid of training runs on Ray (the icsim[ray] extra).",
    "atlas": "Which algorithm, at which step, each layer of a trained run matches.",
    "report": "A static HTML site (opens from disk) of reproductions, runs and atlases.",
}

# One line per TrainConfig / Curriculum field for `icsim train --help` and reproduce's overrides
# (TrainConfig groups its fields under section comments, which tyro would show as each help).
TRAIN_HELP = {
    "task": "task family to train on (icsim list shows them)",
    "dim": "input dimension d of the task",
    "task_params": "extra task parameters, e.g. --task-params condition_number 10",
    "token_format": "how a prompt becomes tokens: interleaved (x, y alternate) or stacked",
    "model": "model family (icsim list shows them)",
    "n_layer": "number of blocks",
    "n_head": "attention heads per block",
    "n_embd": "model width (embedding size)",
    "attention": "attention kind: softmax, linear or relu",
    "mlp": "an MLP after attention in each block",
    "layer_norm": "LayerNorm in each block",
    "positional": "learned positional embedding (transformers only)",
    "read_in": "linear read-in; off feeds tokens as they are (n_embd = token width)",
    "steps": "training steps",
    "batch_size": "prompts per step",
    "lr": "peak learning rate of AdamW",
    "weight_decay": "AdamW weight decay",
    "betas": "AdamW betas (two numbers)",
    "grad_clip": "max gradient norm; 0 = off",
    "warmup_steps": "linear warm-up steps before the schedule",
    "schedule": "learning-rate decay after warm-up: constant, cosine or linear",
    "min_lr_ratio": "final lr / lr for the cosine and linear schedules",
    "curriculum": "curriculum over active dimensions and prompt length (Garg et al. 2022)",
    "seed": "random seed of the weights and the batches",
    "device": "cpu, cuda or cuda:N",
    "amp": "bf16 autocast (GPU only; skipped with a notice on a CPU)",
    "compile": "torch.compile (GPU only; skipped with a notice on a CPU)",
    "log_every": "steps between rows of metrics.jsonl (and progress updates)",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "newest checkpoints kept on disk",
    "enabled": "grow dims and points during training; off trains at the end values",
    "dims_start": "active dimensions at step 0",
    "dims_end": "active dimensions at the end (<= dim)",
    "dims_inc": "dimensions added every interval",
    "points_start": "points per prompt at step 0",
    "points_end": "points per prompt at the end (the model's prompt length)",
    "points_inc": "points added every interval",
    "interval": "steps between curriculum increments",
}

# Sizes beyond these are refused before anything is built (issue 15: `construct --steps 1e9`).
CONSTRUCT_LIMITS = {"steps": 1000, "dim": 1024, "problems": 1_000_000}


def _load_json(path: str, what: str) -> dict:
    """Config files are JSON, parsed with the standard library's data-only parser."""
    try:
        return json.loads(Path(path).read_bytes())
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}.") from None
    except (ValueError, RecursionError) as e:  # bad JSON or encoding, absurd nesting
        raise InputError(f"{what} {path} is not valid JSON: {e}.") from None


# -- building the parser --------------------------------------------------------------------
def _arg(help: str, **kw):
    import tyro

    return tyro.conf.arg(help=help, **kw)


def _flag(help: str):
    """A bool flag that is off unless given (`--quiet`, not `--quiet/--no-quiet`)."""
    import tyro

    return Annotated[bool, tyro.conf.FlagCreatePairsOff, _arg(help)]


def _doc(cls, name: str) -> str:
    """A field's own description: TRAIN_HELP, else its docstring or comment in the source."""
    from icsim.training.config import Curriculum, TrainConfig

    if cls in (TrainConfig, Curriculum) and name in TRAIN_HELP:
        return TRAIN_HELP[name]
    try:
        from tyro import _docstrings

        return _docstrings.get_field_docstring(cls, name, ()) or name.replace("_", " ")
    except Exception:  # noqa: BLE001 - tyro's source reader is best effort
        return name.replace("_", " ")


def _command(name: str, specs: list, doc: str, bases=()) -> type:
    cls = make_dataclass(name, specs, frozen=True, bases=bases)
    cls.__doc__ = doc
    return cls


def _common() -> list:
    return [("debug", _flag("show the traceback of an error"), field(default=False))]


def _train_mirror(cls, default, helps=True) -> type:
    """`cls` (TrainConfig, Curriculum) as a plain dataclass for the parser: the same fields and
    types, `default`'s values, no checks (they run after parsing, on the real config)."""
    import typing

    hints = typing.get_type_hints(cls)
    specs = []
    for f in fields(cls):
        hint, value = hints[f.name], getattr(default, f.name)
        if is_dataclass(hint):
            sub = _train_mirror(hint, value)
            specs.append((f.name, Annotated[sub, _arg(_doc(cls, f.name))], field(default=sub())))
        else:
            dflt = (
                field(default_factory=lambda v=value: dict(v))
                if isinstance(value, dict)
                else (field(default=value))
            )
            specs.append((f.name, Annotated[hint, _arg(_doc(cls, f.name))], dflt))
    return _command(cls.__name__, specs, cls.__doc__)


LEAVES = (int, float, str, bool)


def _leaf_type(hint):
    """`hint` if the parser can take it as one flag (scalars, tuples of scalars, Optional of
    those), else None (dicts and nested tuples are left to the Python API)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint in LEAVES:
        return hint
    if origin is tuple and args and all(a in LEAVES or a is Ellipsis for a in args):
        return hint
    if origin in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _leaf_type(rest[0]) if len(rest) == 1 else None
    return None


def _override_mirror(cls, prefix: str = "") -> type | None:
    """Every field of a profile config (`cls`) as an optional flag: None keeps the profile's
    value. Nested configs become dotted flags (`--train.steps`)."""
    import typing

    hints = typing.get_type_hints(cls)
    specs = []
    for f in fields(cls):
        hint = hints[f.name]
        inner = [a for a in get_args(hint) if is_dataclass(a)] or (
            [hint] if is_dataclass(hint) else []
        )
        if inner:
            sub = _override_mirror(inner[0], f"{prefix}{f.name}.")
            if sub is not None:
                doc = f"{_doc(cls, f.name)} (override any of its fields)"
                specs.append((f.name, Annotated[sub, _arg(doc)], field(default=sub())))
            continue
        leaf = _leaf_type(hint)
        if leaf is None:
            continue
        kw = {"metavar": leaf.__name__.upper()} if leaf in LEAVES and leaf is not bool else {}
        flag = _arg(_doc(cls, f.name), help_behavior_hint="(default: the profile's)", **kw)
        specs.append((f.name, Annotated[leaf | None, flag], field(default=None)))
    return _command(cls.__name__, specs, cls.__doc__) if specs else None


def _overrides(obj, prefix: str = "") -> dict:
    """The dotted fields the user set in a parsed override mirror."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out.update(_overrides(value, f"{prefix}{f.name}."))
        elif value is not None:
            out[prefix + f.name] = value
    return out


def _reproduce_type(name: str):
    import icsim.experiments as E

    exp = E.EXPERIMENTS.get(name)
    profiles = tuple(exp.profiles)
    cfg_cls = type(exp.profile(profiles[0]))
    specs = [
        (
            "profile",
            Annotated[
                Literal[profiles],
                _arg("which settings: quick (a CPU, minutes) or full (the paper's, a GPU)"),
            ],
            field(default="quick" if "quick" in profiles else profiles[0]),
        ),
        (
            "out",
            Annotated[
                str | None,
                _arg(
                    "output directory",
                    metavar="DIR",
                    help_behavior_hint="(default: runs/NAME-PROFILE)",
                ),
            ],
            field(default=None),
        ),
        ("device", Annotated[str, _arg("cpu, cuda or cuda:N")], field(default="cpu")),
        (
            "overwrite",
            _flag("replace --out if it holds an earlier icsim run"),
            field(default=False),
        ),
        (
            "smoke",
            _flag(
                "every stage at the profile's shapes with steps and evaluation sizes cut "
                "to the minimum (a test of the profile, not a result)"
            ),
            field(default=False),
        ),
        ("quiet", _flag("no progress bars"), field(default=False)),
        *_common(),
    ]
    mirror = _override_mirror(cfg_cls)
    if mirror is not None:
        import tyro

        specs.append(("set", Annotated[mirror, tyro.conf.arg(name="")], field(default=mirror())))
    cls = _command(name.replace("-", "_"), specs, exp.title or name)
    cls._icsim_name = name
    return cls


def _command_types(command: str, argv: list[str]) -> dict[str, type]:
    """The dataclass of every command; only `command` is built in full (imports happen here)."""
    import tyro

    cmds = {name: _command(name, _common(), doc) for name, doc in COMMANDS.items()}
    if command == "list":
        cmds["list"] = _command(
            "list",
            [
                ("verbose", _flag("one line per entry with its description"), field(default=False)),
                *_common(),
            ],
            COMMANDS["list"],
        )
    elif command == "train":
        from icsim.training import TrainConfig, from_dict

        default = TrainConfig()
        config = _preparse(argv, "--config")
        if config:
            default = from_dict(TrainConfig, _load_json(config, "config file"), config)
        specs = [
            ("out", Annotated[str, _arg("run directory")], field(default="runs/train")),
            (
                "config",
                Annotated[
                    str | None,
                    _arg(
                        "JSON file of TrainConfig fields (the flags below override it)",
                        metavar="FILE",
                    ),
                ],
                field(default=None),
            ),
            (
                "resume",
                Annotated[
                    str | None,
                    _arg(
                        "continue the run in this directory with its saved config",
                        metavar="RUN_DIR",
                    ),
                ],
                field(default=None),
            ),
            (
                "overwrite",
                _flag("replace --out if it holds an earlier icsim run"),
                field(default=False),
            ),
            (
                "seeds",
                Annotated[
                    int,
                    _arg(
                        "train K seeds (seed, seed+1, ...) into OUT/seed_<s> "
                        "(transformers: one vectorised step)"
                    ),
                ],
                field(default=1),
            ),
            ("quiet", _flag("no progress bar"), field(default=False)),
            *_common(),
        ]
        mirror = _train_mirror(TrainConfig, default)
        specs += [(f.name, f.type, _copy_field(f)) for f in fields(mirror)]
        cmds["train"] = _command("train", specs, COMMANDS["train"])
        cmds["train"]._mirror = mirror
    elif command == "eval":
        cmds["eval"] = _command(
            "eval",
            [
                (
                    "run_dir",
                    Annotated[str, tyro.conf.Positional, _arg("a run directory of icsim train")],
                ),
                ("prompts", Annotated[int, _arg("prompts to evaluate on")], field(default=1280)),
                (
                    "seed",
                    Annotated[int, _arg("seed of the evaluation prompts")],
                    field(default=12345),
                ),
                ("device", Annotated[str, _arg("cpu, cuda or cuda:N")], field(default="cpu")),
                ("overwrite", _flag("replace an earlier RUN_DIR/eval"), field(default=False)),
                *_common(),
            ],
            COMMANDS["eval"],
        )
    elif command == "reproduce":
        import icsim.experiments as E

        names = E.names()
        given = next((a for a in argv[1:] if not a.startswith("-")), None)
        if given is not None and given not in names and not _wants_help(argv):
            from icsim.errors import unknown_name

            raise unknown_name("experiment", given, names)
        exps = [Annotated[_reproduce_type(n), tyro.conf.subcommand(n)] for n in names]
        cmds["reproduce"] = _command(
            "reproduce",
            [
                ("experiment", Annotated[one_of(exps), tyro.conf.arg(name="")]),
            ],
            COMMANDS["reproduce"],
        )
    elif command == "construct":
        cmds["construct"] = _command(
            "construct",
            [
                ("name", Annotated[str, tyro.conf.Positional, _arg("construction (icsim list)")]),
                (
                    "steps",
                    Annotated[int | None, _arg("algorithm steps T (default 3)")],
                    field(default=None),
                ),
                (
                    "dim",
                    Annotated[int | None, _arg("input dimension d (default 5)")],
                    field(default=None),
                ),
                (
                    "problems",
                    Annotated[
                        int | None, _arg("random problems per condition number (default 1000)")
                    ],
                    field(default=None),
                ),
                (
                    "dtype",
                    Annotated[
                        Literal["float64", "float32"],
                        _arg("dtype of the model's run (the reference is float64)"),
                    ],
                    field(default="float64"),
                ),
                ("seed", Annotated[int, _arg("seed of the random problems")], field(default=0)),
                (
                    "task_params",
                    Annotated[
                        dict[str, float | int | str],
                        _arg("task parameters, e.g. --task-params condition_number 100"),
                    ],
                    field(default_factory=dict),
                ),
                (
                    "params",
                    Annotated[str | None, _arg("extra construction parameters as a JSON object")],
                    field(default=None),
                ),
                (
                    "verify",
                    _flag("compare with the algorithm; exit 1 when the check fails"),
                    field(default=False),
                ),
                *_common(),
            ],
            COMMANDS["construct"],
        )
    elif command == "sweep":
        cmds["sweep"] = _command(
            "sweep",
            [
                (
                    "spec",
                    Annotated[
                        str,
                        tyro.conf.Positional,
                        _arg('JSON: {"out", "base": {...}, "grid": {field: [values]}}'),
                    ],
                ),
                (
                    "address",
                    Annotated[str | None, _arg("an existing Ray cluster (default: a local one)")],
                    field(default=None),
                ),
                ("dry_run", _flag("list the runs and stop"), field(default=False)),
                ("quiet", _flag("no per-run output from Ray's workers"), field(default=False)),
                *_common(),
            ],
            COMMANDS["sweep"],
        )
    elif command in ("atlas", "report"):  # their flags live beside their code
        from icsim.report_site.commands import specs

        cmds[command] = _command(
            command, [*specs(command, _arg, _flag), *_common()], COMMANDS[command]
        )
    return cmds


def _copy_field(f):
    if f.default_factory is not MISSING:
        return field(default_factory=f.default_factory)
    return field(default=f.default)


def one_of(options: list):
    """The union of `options` (tyro's subcommands): `Union[...]` of a list built at run time."""
    return Union[tuple(options)]  # noqa: UP007


def _preparse(argv: list[str], flag: str) -> str | None:
    """The value of `flag` in argv before parsing (--config sets the other flags' defaults)."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _wants_help(argv: list[str]) -> bool:
    return "-h" in argv or "--help" in argv


def parse(argv: list[str]):
    """argv -> the command's parsed dataclass (tyro exits 2 on a flag that does not parse)."""
    import tyro

    command = argv[0] if argv and not argv[0].startswith("-") else None
    if command is not None and command not in COMMANDS:
        print(
            f"usage: icsim [-h] {{{','.join(COMMANDS)}}} ...\nicsim: error: argument COMMAND: "
            f"invalid choice: {command!r} (choose from {', '.join(map(repr, COMMANDS))})."
            f"{did_you_mean(command, COMMANDS)}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE)
    if command == "reproduce" and _resuming(argv) and not _wants_help(argv):
        return _parse_reproduce_resume(argv)
    cmds = _command_types(command, argv)
    root = one_of([Annotated[t, tyro.conf.subcommand(n)] for n, t in cmds.items()])
    return tyro.cli(
        root,
        args=argv,
        prog="icsim",
        description="Transformers as in-context algorithm simulators: tasks, algorithms, "
        "constructions, training, analysis, reproductions.",
        config=(tyro.conf.OmitSubcommandPrefixes,),
    )


# -- list -----------------------------------------------------------------------------------
def cmd_list(c) -> int:
    import icsim
    import icsim.experiments

    sections = {
        "tasks": icsim.tasks.names(),
        "algorithms": icsim.algorithms.names(),
        "models": icsim.models.names(),
        "token formats": icsim.models.FORMATS.names(),
        "constructions": icsim.constructions.names(),
        "experiments": icsim.experiments.names(),
    }
    for title, names in sections.items():
        print(f"{title}:")
        for n in names:
            print(f"  {n}")
    return 0


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
        if f.name not in ("debug", "quiet", "resume")
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
        result = trainer.train()
        print(json.dumps({"run_dir": str(c.resume), **result}))
        return 0
    cfg = _train_config(c)
    if c.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {c.seeds}.")
    _check_train_fits(cfg, c.seeds)
    out = rundir.check_out(c.out)
    from icsim.training.distributed import world

    if c.seeds == 1:
        if world()[0] > 0:  # under torchrun, rank 0 alone prepares and writes `out`
            trainer = Trainer(cfg, out, quiet=c.quiet, overwrite=c.overwrite)
        else:
            with rundir.replacing(out, overwrite=c.overwrite):  # the old run stays until it starts
                trainer = Trainer(cfg, out, quiet=c.quiet, overwrite=True)
        print(json.dumps({"run_dir": str(out), **trainer.train()}))
        return 0
    from dataclasses import replace

    from icsim.training.multiseed import VECTORISABLE, MultiSeedTrainer

    seed_list = [cfg.seed + i for i in range(c.seeds)]
    if cfg.model in VECTORISABLE:  # K models in one vectorised step, one run dir per seed
        with rundir.replacing(out, overwrite=c.overwrite):
            multi = MultiSeedTrainer(cfg, seed_list, out, quiet=c.quiet, overwrite=True)
        result = multi.train()
        for d, loss in zip(multi.run_dirs, result["loss"]):
            print(json.dumps({"run_dir": str(d), "step": result["step"], "loss": loss}))
        return 0
    with rundir.replacing(out, overwrite=c.overwrite):
        pass
    for s in seed_list:  # e.g. the LSTM: one run after another, the same layout
        run_dir = out / f"seed_{s}"
        trainer = Trainer(replace(cfg, seed=s), run_dir, quiet=c.quiet)
        print(json.dumps({"run_dir": str(run_dir), **trainer.train()}))
    return 0


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
    from icsim.training.trainer import resolve_device

    V.positive_int("--prompts", c.prompts)
    V.seed("--seed", c.seed)
    device = str(resolve_device(V.device(c.device)))
    out = Path(c.run_dir) / "eval"
    if out.exists() and not c.overwrite:
        raise InputError(
            f"{out} holds an earlier evaluation; pass --overwrite to replace it "
            "(or copy it away first)."
        )
    with warnings.catch_warnings(record=True) as skipped:  # corrupt newer checkpoints, named
        warnings.simplefilter("always", ckpt.CheckpointSkipped)
        found = ckpt.latest_intact(Path(c.run_dir)) if Path(c.run_dir).is_dir() else None
    model, fmt, cfg = load_trained(c.run_dir, device)
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
    rundir.write_json(out / "metrics.json", {**record, "curves": curves})
    plot_curves(curves, out / "error_vs_examples.png", vline=cfg.dim, vline_label="k = d")
    for name, curve in curves.items():
        print(f"{name:>20s}: " + " ".join(f"{v:.3g}" for v in curve["y"]))
    print(
        f"wrote {out / 'metrics.json'} and {out / 'error_vs_examples.png'} "
        f"(checkpoint {record['checkpoint']})"
    )
    return 0


def _build_task(cfg):
    from icsim.training.trainer import build_task

    return build_task(cfg)


def _version() -> str:
    import icsim

    return icsim.__version__


# -- reproduce ------------------------------------------------------------------------------
def cmd_reproduce(c) -> int:
    from icsim import _validate as V
    from icsim.experiments import reproduce

    e = c.experiment
    overrides = _overrides(e.set) if hasattr(e, "set") else {}
    out = reproduce(
        e._icsim_name,
        e.profile,
        e.out,
        device=V.device(e.device),
        overwrite=e.overwrite,
        quiet=e.quiet,
        overrides=overrides,
        smoke=e.smoke,
    )
    return _print_reproduction(out)


def _print_reproduction(out: Path) -> int:
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"wrote {out}/report.md, metrics.json and figures ({metrics['wall_seconds']:.0f} s)")
    for k, v in metrics["scalars"].items():
        print(f"  {k} = {v:.4g}" if isinstance(v, float) else f"  {k} = {v}")
    return 0


def _resuming(argv: list[str]) -> bool:
    return any(a == "--resume" or a.startswith("--resume=") for a in argv[1:])


def _parse_reproduce_resume(argv: list[str]):
    """`icsim reproduce [NAME] --resume DIR [--device D] [--quiet] [--debug]`: the experiment,
    profile, overrides and smoke setting come from DIR/config.json, so any other flag is refused
    (like `icsim train --resume`)."""
    values: dict = {"name": None, "resume": None, "device": None, "quiet": False, "debug": False}
    args, given, i = argv[1:], [], 0
    while i < len(args):
        a = args[i]
        key, eq, value = a.partition("=")
        if key in ("--resume", "--device"):
            if not eq:
                if i + 1 >= len(args) or args[i + 1].startswith("--"):
                    raise InputError(f"{key} needs a value, e.g. {key} runs/garg2022-quick.")
                i, value = i + 1, args[i + 1]
            values[key[2:]] = value
        elif a in ("--quiet", "--debug"):
            values[a[2:]] = True
        elif i == 0 and not a.startswith("-"):
            values["name"] = a
        else:
            given.append(key)
        i += 1
    if given:
        raise InputError(
            "--resume continues a reproduction with the experiment, profile and settings saved "
            f"in its config.json; drop {', '.join(given)}."
        )
    if not str(values["resume"]).strip():
        raise InputError("--resume needs the reproduction's directory, e.g. --resume runs/x.")
    spec = [(k, object, field(default=v)) for k, v in values.items()]
    return _command("reproduce_resume", spec, "continue a killed reproduction")(**values)


def cmd_reproduce_resume(c) -> int:
    from icsim import _validate as V
    from icsim.experiments.base import resume

    device = None if c.device is None else V.device(c.device)
    out = resume(c.resume, device=device, quiet=c.quiet, experiment=c.name)
    return _print_reproduction(out)


# -- construct ------------------------------------------------------------------------------
def cmd_construct(c) -> int:
    import icsim

    icsim.constructions.CONSTRUCTIONS.factory(c.name)  # unknown name -> clear error
    from icsim.constructions import verify as V

    try:
        params = json.loads(c.params) if c.params else {}
    except (ValueError, RecursionError) as e:
        raise InputError(f"--params is not valid JSON ({e}): {c.params!r}.") from None
    if not isinstance(params, dict):
        raise InputError(f"--params must be a JSON object, got {c.params!r}.")
    flags = {
        "steps": "--steps",
        "dim": "--dim",
        "n_problems": "--problems",
        "dtype": "--dtype",
        "seed": "--seed",
    }
    for key in sorted(set(params) & (set(flags) | {"verify"})):
        how = f"pass it as {flags[key]}" if key in flags else "use the --verify flag"
        raise InputError(f"--params sets {key!r}, which is a flag of icsim construct: {how}.")
    for key in sorted(set(params) & set(c.task_params)):
        raise InputError(f"{key!r} is set by both --params and --task-params; keep one.")
    params = {**params, **c.task_params}
    _check_construct_sizes(c)
    result = V.verify(
        c.name, steps=c.steps, dim=c.dim, n_problems=c.problems, dtype=c.dtype,
        seed=c.seed, **params,
    )  # fmt: skip
    print(result.summary())
    return 0 if (not c.verify or result.passed) else 1


def _check_construct_sizes(c) -> None:
    from icsim import _validate as V

    for key, flag in (("steps", c.steps), ("dim", c.dim), ("problems", c.problems)):
        if flag is not None:
            V.positive_int(f"--{key}", flag)
            if flag > CONSTRUCT_LIMITS[key]:
                raise InputError(
                    f"--{key} must be at most {CONSTRUCT_LIMITS[key]:,} for a construction, got "
                    f"{flag:,}; larger ones take hours and memory without telling more."
                )
    V.seed("--seed", c.seed)


# -- sweep ----------------------------------------------------------------------------------
def cmd_sweep(c) -> int:
    from icsim.sweep import expand, read_spec, run_sweep

    spec = read_spec(c.spec)
    runs = expand(spec)  # the whole spec is checked before Ray starts
    if c.dry_run:
        for name, _ in runs:
            print(name)
        return 0
    rows = run_sweep(spec, address=c.address, quiet=c.quiet)
    for r in rows:
        print(f"{r['run']}: {r['status']}")
    return 0 if all(not r["status"].startswith("failed") for r in rows) else 1


def _out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"
        or "out of memory" in text
        or "can't allocate memory" in text
    )


def cmd_site(c) -> int:  # atlas and report: icsim.report_site.commands
    from icsim.report_site import commands

    return commands.run(c)


HANDLERS = {
    "list": cmd_list,
    "train": cmd_train,
    "eval": cmd_eval,
    "reproduce": cmd_reproduce,
    "reproduce_resume": cmd_reproduce_resume,
    "construct": cmd_construct,
    "sweep": cmd_sweep,
    "atlas": cmd_site,
    "report": cmd_site,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if argv[:1] == ["--debug"]:  # `icsim --debug COMMAND` as well as `icsim COMMAND --debug`
        argv = [*argv[1:], "--debug"] if len(argv) > 1 else argv
    try:
        c = parse(argv)
        debug = getattr(c, "experiment", c).debug
        return HANDLERS[type(c).__name__](c)
    except InputError as e:
        if debug:
            raise
        print(f"icsim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if debug or e.errno not in DISK_ERRORS:
            raise
        print(
            f"icsim: error: cannot write {e.filename or 'to disk'}: {e.strerror}. Files already "
            "written are kept; free space or choose a writable location (icsim train --resume "
            "RUN_DIR continues a run).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except (MemoryError, RuntimeError) as e:  # an allocation the estimate did not foresee
        if debug or not _out_of_memory(e):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(
            f"icsim: error: out of memory ({first[:200]}); lower the batch size, model size or "
            "number of prompts.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except SystemExit as e:  # training stopped by SIGTERM/SIGINT after writing a checkpoint
        if type(e).__name__ != "TrainingInterrupted":
            raise
        return e.code
    except KeyboardInterrupt:
        print(
            "icsim: interrupted; resume with --resume where the command supports it.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
