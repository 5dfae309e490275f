"""The parser of `icsim`: one tyro subcommand per verb, each flag a typed dataclass field whose
help is the field's docstring. Only the command being run is built (imports happen here), so
`icsim --help` and every command's `--help` import no torch."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, field, fields
from pathlib import Path
from typing import Annotated, Literal

from icsim.cli_types import (  # noqa: F401 -- _overrides: cli.py reads it from here
    _arg,
    _command,
    _common,
    _copy_field,
    _experiment_stub,
    _flag,
    _overrides,
    _reproduce_type,
    _train_mirror,
    one_of,
)
from icsim.errors import InputError, did_you_mean

EXIT_USAGE = 2

COMMANDS = {
    "list": "List tasks, algorithms, models, token formats, constructions and experiments, "
    "each with its one-line description (-v: parameters with defaults, paper, cost).",
    "describe": "Describe one task, algorithm, model, construction or experiment: what it is, "
    "its parameters with their defaults, its paper and (experiments) the cost of each profile.",
    "train": "Train a model on an in-context task (flags override --preset or --config). On a "
    "CPU with no size flag (--n-layer, --n-head, --n-embd, --steps, --batch-size) the cpu-small "
    "preset runs (minutes); --preset garg2022 is the paper's scale (a GPU).",
    "eval": "Error against the number of in-context examples for a trained run.",
    "reproduce": "Reproduce a paper's experiment: config.json, metrics.json, figures, report.md "
    "(`icsim reproduce --resume DIR` continues a killed one).",
    "construct": "Build a hand-made transformer and check it against its algorithm.",
    "sweep": "Run a grid of training runs on Ray (the icsim[ray] extra).",
    "convert": "Convert a model trained elsewhere into an icsim run directory (gpt2-state: "
    "Garg et al.'s / Fu et al.'s GPT-2 state.pt) that icsim eval and icsim atlas read.",
    "atlas": "Which algorithm, at which step, each layer of a trained run matches.",
    "report": "A static HTML site (opens from disk) of reproductions, runs and atlases.",
}


def _load_json(path: str, what: str) -> dict:
    """Config files are JSON, parsed with the standard library's data-only parser."""
    try:
        return json.loads(Path(path).read_bytes())
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}.") from None
    except (ValueError, RecursionError) as e:  # bad JSON or encoding, absurd nesting
        raise InputError(f"{what} {path} is not valid JSON: {e}.") from None


def _command_types(command: str, argv: list[str]) -> dict[str, type]:
    """The dataclass of every command; only `command` is built in full (imports happen here)."""
    import tyro

    cmds = {name: _command(name, _common(), doc) for name, doc in COMMANDS.items()}
    if command == "list":
        from icsim.catalog import KINDS

        kind = Literal[KINDS]
        cmds["list"] = _command(
            "list",
            [
                (
                    "kind",
                    Annotated[
                        kind | None,
                        tyro.conf.Positional,
                        _arg("list only this kind", help_behavior_hint="(default: every kind)"),
                    ],
                    field(default=None),
                ),
                (
                    "verbose",
                    _flag(
                        "each entry's parameters with defaults, its paper and (experiments) cost",
                        aliases=("-v",),
                    ),
                    field(default=False),
                ),
                *_common(),
            ],
            COMMANDS["list"],
        )
    elif command == "describe":
        cmds["describe"] = _command(
            "describe",
            [
                (
                    "name",
                    Annotated[str, tyro.conf.Positional, _arg("a name that icsim list shows")],
                ),
                *_common(),
            ],
            COMMANDS["describe"],
        )
    elif command == "train":
        from icsim.training.config import TrainConfig, from_dict

        values, preset_name = None, _train_preset(argv)
        config = _preparse(argv, "--config")
        if config and preset_name and _preparse(argv, "--preset"):
            raise InputError("--preset and --config both set the defaults of the flags; use one.")
        if config:
            values = asdict(from_dict(TrainConfig, _load_json(config, "config file"), config))
        elif preset_name:
            values = _preset_values(preset_name)
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
            (
                "preset",
                Annotated[
                    str | None,
                    _arg(
                        "a named scale whose fields the other flags override: cpu-small "
                        "(minutes on a CPU; the default there when no size flag is given) or "
                        "garg2022 (the paper's: 12 layers, 500k steps, a GPU)",
                        metavar="NAME",
                    ),
                ],
                field(default=None),
            ),
            (
                "yes",
                _flag("start a run estimated at over an hour without asking"),
                field(default=False),
            ),
            ("quiet", _flag("no progress bar"), field(default=False)),
            *_common(),
        ]
        mirror = _train_mirror(TrainConfig, values)
        specs += [(f.name, f.type, _copy_field(f)) for f in fields(mirror)]
        cmds["train"] = _command("train", specs, COMMANDS["train"])
        cmds["train"]._mirror = mirror
        cmds["train"]._implied_preset = None if _preparse(argv, "--preset") else preset_name
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
                (
                    "ood",
                    _flag(
                        "also Garg et al.'s out-of-distribution prompts (linear regression): "
                        "skewed, half-subspace, orthogonal, overlapping, orthants, scaled x and y"
                    ),
                    field(default=False),
                ),
                *_common(),
            ],
            COMMANDS["eval"],
        )
    elif command == "reproduce":
        from icsim.catalog import experiment_headers

        headers = experiment_headers()  # read from source: help imports no experiment
        given = next((a for a in argv[1:] if not a.startswith("-")), None)
        if given is not None and given not in headers:  # registered in a way the scan missed?
            import icsim.experiments as E

            if given in E.names():
                headers[given] = {"title": E.get(given).title, "cost": E.get(given).cost}
            elif not _wants_help(argv):
                from icsim.errors import unknown_name

                raise unknown_name("experiment", given, E.names())
        exps = [
            Annotated[
                _reproduce_type(n) if n == given else _experiment_stub(n, h),
                tyro.conf.subcommand(n),
            ]
            for n, h in headers.items()
        ]
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
                        dict[str, int | float | str],
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
    elif command == "convert":
        cmds["convert"] = _command(
            "convert",
            [
                (
                    "kind",
                    Annotated[
                        Literal["gpt2-state"],
                        tyro.conf.Positional,
                        _arg("what the file is: gpt2-state (Garg/Fu's TransformerModel)"),
                    ],
                ),
                (
                    "path",
                    Annotated[
                        str,
                        tyro.conf.Positional,
                        _arg("their state.pt or model_STEP.pt", metavar="STATE_PT"),
                    ],
                ),
                ("out", Annotated[str, _arg("the run directory to write", metavar="RUN_DIR")]),
                (
                    "n_head",
                    Annotated[
                        int | None,
                        _arg(
                            "attention heads",
                            metavar="N",
                            help_behavior_hint="(default: their config.yaml's)",
                        ),
                    ],
                    field(default=None),
                ),
                (
                    "n_points",
                    Annotated[
                        int | None,
                        _arg(
                            "points per prompt",
                            metavar="N",
                            help_behavior_hint="(default: their config.yaml's, else 2d + 1)",
                        ),
                    ],
                    field(default=None),
                ),
                (
                    "task",
                    Annotated[
                        str | None,
                        _arg(
                            "the icsim task it was trained on",
                            metavar="NAME",
                            help_behavior_hint="(default: their config.yaml's, else "
                            "linear_regression)",
                        ),
                    ],
                    field(default=None),
                ),
                ("overwrite", _flag("replace RUN_DIR if icsim made it"), field(default=False)),
                *_common(),
            ],
            COMMANDS["convert"],
        )
    elif command in ("atlas", "report"):  # their flags live beside their code
        from icsim.report_site.commands import specs

        cmds[command] = _command(
            command, [*specs(command, _arg, _flag), *_common()], COMMANDS[command]
        )
    return cmds


def _train_preset(argv: list[str]) -> str | None:
    """The preset `icsim train ARGV` starts from: --preset's, else cpu-small on a CPU when no
    size flag, --config or --resume is given (a newcomer's first run takes minutes, not weeks)."""
    from icsim.training.config import SIZE_FIELDS

    given = _preparse(argv, "--preset")
    if given or any(_preparse(argv, f) for f in ("--config", "--resume")):
        return given
    device = _preparse(argv, "--device") or "cpu"
    flags = {"--" + f.replace("_", "-") for f in SIZE_FIELDS}
    sized = any(a.split("=")[0] in flags for a in argv)
    return "cpu-small" if device == "cpu" and not sized else None


def _preset_values(name: str) -> dict:
    """A preset's TrainConfig as a dict (its checks wait for the parsed flags: no torch here)."""
    from icsim.training.config import TrainConfig, deferred_checks, preset

    with deferred_checks():
        return asdict(TrainConfig(**preset(name)))


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
