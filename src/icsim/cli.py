"""The `icsim` command line: list, train, eval, reproduce, construct.

User errors (bad names, values, files) print one line and exit with code 2; `--debug` shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from dataclasses import replace
from pathlib import Path

from icsim.errors import InputError

EXIT_USAGE = 2
# a full, read-only or forbidden disk: the user's to fix, so one message instead of a traceback
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _load_json(path: str, what: str) -> dict:
    """Config files are JSON, parsed with the standard library's data-only parser."""
    try:
        return json.loads(Path(path).read_bytes())
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}.") from None
    except (ValueError, RecursionError) as e:  # bad JSON or encoding, absurd nesting
        raise InputError(f"{what} {path} is not valid JSON: {e}.") from None


# -- list -----------------------------------------------------------------------------------
def cmd_list(args) -> int:
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
def cmd_train(args, rest: list[str]) -> int:
    from icsim.training import TrainingDiverged

    try:
        return _train(args, rest)
    except TrainingDiverged as e:  # not a usage error (exit 1), but no traceback either
        if args.debug:
            raise
        print(f"icsim: {e}", file=sys.stderr)
        return 1


def _train(args, rest: list[str]) -> int:
    import tyro

    from icsim.training import TrainConfig, Trainer, from_dict
    from icsim.training.config import checked, deferred_checks

    if args.resume:
        if rest:
            raise InputError(f"--resume continues a run with its saved config; drop {rest}.")
        trainer = Trainer.resume(args.resume, quiet=args.quiet)
        result = trainer.train()
        print(json.dumps({"run_dir": str(args.resume), **result}))
        return 0
    default = TrainConfig()
    if args.config:
        default = from_dict(TrainConfig, _load_json(args.config, "config file"), args.config)
    with deferred_checks():  # checked below, so bad values read like every other user error
        cfg = tyro.cli(
            TrainConfig,
            args=rest,
            default=default,
            prog="icsim train",
            description="Train a model on an in-context task (flags override --config).",
        )
    cfg = checked(cfg)
    seeds = args.seeds
    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}.")
    out = Path(args.out)
    if seeds == 1:
        result = Trainer(cfg, out, quiet=args.quiet, overwrite=args.overwrite).train()
        print(json.dumps({"run_dir": str(out), **result}))
        return 0
    from icsim.training.multiseed import VECTORISABLE, MultiSeedTrainer

    seed_list = [cfg.seed + i for i in range(seeds)]
    if cfg.model in VECTORISABLE:  # K models in one vectorised step, one run dir per seed
        multi = MultiSeedTrainer(cfg, seed_list, out, quiet=args.quiet, overwrite=args.overwrite)
        result = multi.train()
        for d, loss in zip(multi.run_dirs, result["loss"]):
            print(json.dumps({"run_dir": str(d), "step": result["step"], "loss": loss}))
        return 0
    for s in seed_list:  # e.g. the LSTM: one run after another, the same layout
        run_dir = out / f"seed_{s}"
        result = Trainer(replace(cfg, seed=s), run_dir, quiet=args.quiet, overwrite=args.overwrite)
        print(json.dumps({"run_dir": str(run_dir), **result.train()}))
    return 0


# -- eval -----------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    import torch

    from icsim import rundir
    from icsim.analysis import baseline_predictions, evaluate_against_baselines
    from icsim.analysis.evaluation import model_prefix_predictions
    from icsim.analysis.plots import plot_curves
    from icsim.experiments.garg2022 import BASELINES
    from icsim.training import load_trained
    from icsim.training.trainer import build_task, resolve_device

    device = str(resolve_device(args.device))
    model, fmt, cfg = load_trained(args.run_dir, device)
    task = build_task(cfg)
    g = torch.Generator(device=device).manual_seed(args.seed)
    batch = task.sample(args.prompts, cfg.n_points, generator=g, device=device)
    preds = {"transformer": model_prefix_predictions(model, fmt, batch)}
    if cfg.task in ("linear_regression", "sparse_linear_regression"):
        preds.update(baseline_predictions(batch, BASELINES))
    curves = evaluate_against_baselines(batch, preds, seed=args.seed)
    out = Path(args.run_dir) / "eval"
    out.mkdir(exist_ok=True)
    rundir.write_json(out / "metrics.json", {"curves": curves, "prompts": args.prompts})
    plot_curves(curves, out / "error_vs_examples.png", vline=cfg.dim, vline_label="k = d")
    for name, c in curves.items():
        print(f"{name:>20s}: " + " ".join(f"{v:.3g}" for v in c["y"]))
    print(f"wrote {out / 'metrics.json'} and {out / 'error_vs_examples.png'}")
    return 0


# -- reproduce ------------------------------------------------------------------------------
def cmd_reproduce(args) -> int:
    from icsim.experiments import reproduce

    out = reproduce(
        args.name,
        args.profile,
        args.out,
        device=args.device,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"wrote {out}/report.md, metrics.json and figures ({metrics['wall_seconds']:.0f} s)")
    for k, v in metrics["scalars"].items():
        print(f"  {k} = {v:.4g}" if isinstance(v, float) else f"  {k} = {v}")
    return 0


# -- construct ------------------------------------------------------------------------------
def cmd_construct(args) -> int:
    from icsim.constructions import verify as V

    try:
        params = json.loads(args.params) if args.params else {}
    except (ValueError, RecursionError) as e:
        raise InputError(f"--params is not valid JSON ({e}): {args.params!r}.") from None
    if not isinstance(params, dict):
        raise InputError(f"--params must be a JSON object, got {args.params!r}.")
    flags = {"steps": "--steps", "dim": "--dim", "n_problems": "--problems", "dtype": "--dtype"}
    for key in sorted(set(params) & (set(flags) | {"verify"})):
        how = f"pass it as {flags[key]}" if key in flags else "use the --verify flag"
        raise InputError(f"--params sets {key!r}, which is a flag of icsim construct: {how}.")
    given = {"steps": args.steps, "dim": args.dim, "dtype": args.dtype}
    if not args.verify:
        _, _, lines = V.describe(args.name, **given, **params)
        print("\n".join(lines))
        return 0
    result = V.verify(args.name, **given, n_problems=args.problems, **params)
    print(result.summary())  # ends with its criterion and PASS/FAIL
    return 0 if result.passed else 1


# -- sweep ----------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    from icsim.sweep import expand, read_spec, run_sweep

    spec = read_spec(args.spec)
    if args.dry_run:
        for name, _ in expand(spec):
            print(name)
        return 0
    rows = run_sweep(spec, address=args.address, quiet=args.quiet)
    for r in rows:
        print(f"{r['run']}: {r['status']}")
    return 0 if all(not r["status"].startswith("failed") for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="icsim",
        description="Transformers as in-context "
        "algorithm simulators: tasks, algorithms, constructions, "
        "training, analysis, reproductions.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list tasks, algorithms, models, constructions, experiments")

    # allow_abbrev=False: TrainConfig's flags pass through to tyro, and `--seed 5` must not be
    # taken as an abbreviation of `--seeds`
    t = sub.add_parser(
        "train",
        help="train a model (all TrainConfig flags: icsim train --help)",
        add_help=False,
        allow_abbrev=False,
    )
    t.add_argument("--out", default="runs/train", help="run directory (default runs/train)")
    t.add_argument("--config", help="JSON file with TrainConfig fields (flags override it)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    t.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train K seeds (seed, seed+1…) into OUT/seed_<s> (transformers: one vectorised step)",
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="error against in-context examples for a trained run")
    e.add_argument("run_dir")
    e.add_argument("--prompts", type=int, default=1280)
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--device", default="cpu")

    r = sub.add_parser("reproduce", help="reproduce a paper's experiment")
    r.add_argument("name")
    r.add_argument("--profile", choices=("quick", "full"), default="quick")
    r.add_argument("--out", default=None, help="output directory (default runs/NAME-PROFILE)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    r.add_argument("--quiet", action="store_true")

    c = sub.add_parser("construct", help="build a hand-made transformer and verify it")
    c.add_argument("name")
    c.add_argument("--steps", type=int, help="algorithm steps T (default: the check's, 3)")
    c.add_argument("--dim", type=int, help="input dimension d (default: the check's, 5 or 3)")
    c.add_argument("--problems", type=int, help="random problems per κ (default: the check's)")
    c.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    c.add_argument(
        "--params", help="construction and task parameters as a JSON object (condition_number…)"
    )
    c.add_argument(
        "--verify",
        action="store_true",
        help="check against the algorithm by the construction's criterion; exit 1 if it fails",
    )
    w = sub.add_parser("sweep", help="run a grid of training runs on Ray (icsim[ray])")
    w.add_argument("spec", help='JSON: {"out", "base": {...}, "grid": {field: [values]}}')
    w.add_argument("--address", default=None, help="an existing Ray cluster (default: local)")
    w.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    w.add_argument("--quiet", action="store_true")

    for command in sub.choices.values():  # `icsim COMMAND --debug` works too
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command != "train" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "train" and ("-h" in rest or "--help" in rest):
        parser._subparsers._group_actions[0].choices["train"].print_help()
        print("\nTrainConfig flags (each overrides --config):")
    try:
        if args.command == "list":
            return cmd_list(args)
        if args.command == "train":
            return cmd_train(args, rest)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "reproduce":
            return cmd_reproduce(args)
        if args.command == "construct":
            return cmd_construct(args)
        if args.command == "sweep":
            return cmd_sweep(args)
    except InputError as e:
        if args.debug:
            raise
        print(f"icsim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if args.debug or e.errno not in DISK_ERRORS:
            raise
        print(
            f"icsim: error: cannot write {e.filename or 'to disk'}: {e.strerror}. Files already "
            "written are kept; free space or choose a writable location (icsim train --resume "
            "RUN_DIR continues a run).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "icsim: interrupted; resume with --resume where the command supports it.",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
