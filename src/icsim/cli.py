"""The `icsim` command line: list, describe, train, eval, reproduce, construct, sweep, convert,
atlas, report.

One tyro parser with a subcommand per verb (`cli_args`): each flag is a typed dataclass field
with its own one-line help from the field's docstring. Values are validated after parsing by
the same code as the Python API, so a user error (bad name, value or file) prints one line and
exits with code 2; `--debug` shows the traceback instead. `icsim --help` and every command's
`--help` import no torch (only the command being run is built). `icsim train` and `icsim eval`
live in `cli_train`.
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

from icsim.cli_args import COMMANDS, EXIT_USAGE, _overrides, parse  # noqa: F401
from icsim.cli_train import _confirm_long, cmd_eval, cmd_train, trained_runs
from icsim.errors import InputError

# a full, read-only or forbidden disk: the user's to fix, so one message instead of a traceback
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}

# Sizes beyond these are refused before anything is built (issue 15: `construct --steps 1e9`).
CONSTRUCT_LIMITS = {"steps": 1000, "dim": 1024, "problems": 1_000_000}


# -- list -----------------------------------------------------------------------------------
def cmd_list(c) -> int:
    from icsim import catalog

    titles = {"formats": "token formats"}
    for kind in [c.kind] if c.kind else catalog.KINDS:
        print(f"{titles.get(kind, kind)}:")
        for e in catalog.entries(kind):
            if c.verbose:
                print("  " + catalog.describe(e).replace("\n", "\n  "))
            else:
                line = f"  {e.name:<28s} {e.summary}"
                print(line if len(line) <= 110 else line[:109] + "…")
    if not c.verbose:
        print("\n(icsim list -v or icsim describe NAME: parameters, defaults, paper and cost)")
    return 0


def cmd_describe(c) -> int:
    from icsim import catalog

    print(catalog.describe(catalog.find(c.name)))
    return 0


# -- reproduce ------------------------------------------------------------------------------
def cmd_reproduce(c) -> int:
    from icsim import _validate as V
    from icsim.experiments import reproduce

    e = c.experiment
    overrides = _overrides(e.set) if hasattr(e, "set") else {}
    if not e.smoke:
        _check_reproduction_time(e._icsim_name, e.profile, overrides, V.device(e.device), e.yes)
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


def _check_reproduction_time(name: str, profile: str, overrides: dict, device: str, yes: bool):
    """Before a reproduction estimated at over an hour on this device (a full profile without a
    GPU), print the estimate and the smaller runs; ask unless --yes or non-interactive."""
    import icsim.experiments as E
    from icsim import estimate
    from icsim.experiments.base import apply_overrides

    if profile == "quick" and not overrides:  # made for a CPU: its cost is stated in --help
        return
    exp = E.EXPERIMENTS.get(name)
    secs = estimate.profile_seconds(apply_overrides(exp.profile(profile), overrides), device)
    cost = exp.cost.get(profile, "")
    if secs is None and (profile != "full" or device != "cpu"):
        return
    if secs is not None and secs <= estimate.HOUR:
        return
    what = f"{name} --profile {profile}" + (f" (its stated cost: {cost})" if cost else "")
    smaller = f"--profile quick ({exp.cost.get('quick', 'minutes')})" + (
        ", --smoke to check the full profile's stages in seconds, or --device cuda"
    )
    if secs is None:  # trains through settings of its own: the stated cost is all we have
        secs = float("inf")
    _confirm_long(what, secs, device, smaller, yes)


def _print_reproduction(out: Path) -> int:
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"wrote {out}/report.md, metrics.json and figures ({metrics['wall_seconds']:.0f} s)")
    for k, v in metrics["scalars"].items():
        print(f"  {k} = {v:.4g}" if isinstance(v, float) else f"  {k} = {v}")
    print(f"next: read {out}/report.md (our numbers beside the paper's, with its figures)")
    if trained_runs(out) != [out]:
        print(f"      icsim eval {out} evaluates the trained models it holds")
    return 0


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


def cmd_convert(c) -> int:
    from icsim.models.gpt2_import import write_run

    run = write_run(
        c.path, c.out, n_head=c.n_head, n_points=c.n_points, task=c.task, overwrite=c.overwrite
    )
    print(f"wrote {run} (config.json and checkpoints/)")
    print(f"next: icsim eval {run} --ood, or icsim atlas {run}")
    return 0


def cmd_site(c) -> int:  # atlas and report: icsim.report_site.commands
    from icsim.report_site import commands

    return commands.run(c)


HANDLERS = {
    "list": cmd_list,
    "describe": cmd_describe,
    "train": cmd_train,
    "eval": cmd_eval,
    "reproduce": cmd_reproduce,
    "reproduce_resume": cmd_reproduce_resume,
    "construct": cmd_construct,
    "sweep": cmd_sweep,
    "convert": cmd_convert,
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
