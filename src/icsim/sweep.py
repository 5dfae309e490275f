"""Grids of training runs on Ray: `icsim sweep SPEC.json [--address ADDR]`.

A spec is JSON: {"out": "runs/my-sweep", "base": {TrainConfig fields}, "grid": {field:
[values, ...]}, "retries": 2}. Dotted fields reach nested configs ("curriculum.enabled"). Every
point of the grid is one run with its own run directory under `out`; a run that finished
before (a checkpoint at its last step) is skipped when the sweep is launched again, a run that
was interrupted resumes from its newest intact checkpoint, and a failed run is retried.
Ray (the optional extra `icsim[ray]`) runs locally by default or on a cluster by address.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
from dataclasses import replace
from pathlib import Path

from icsim import _validate as V
from icsim.errors import InputError
from icsim.rundir import check_out
from icsim.training import checkpoint as ckpt
from icsim.training.config import TrainConfig, from_dict

SPEC_KEYS = ("out", "base", "grid", "retries", "cpus_per_run")
MAX_RUNS = 10_000  # a grid this large is a typo, not a sweep
# characters a run directory's name keeps; anything else (a path separator above all) becomes _
_SAFE = re.compile(r"[^A-Za-z0-9._=+,-]")


def read_spec(path: str | Path) -> dict:
    """Read and check a whole sweep spec (JSON only: no code runs from a spec file): every
    key, every grid point's TrainConfig, the run directories' names. One InputError names the
    first problem, before Ray starts."""
    try:
        spec = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as e:
        raise InputError(f"cannot read sweep spec {path}: {e.strerror}.") from None
    except UnicodeDecodeError as e:
        raise InputError(
            f"sweep spec {path} is not UTF-8 text ({e.reason} at byte {e.start})."
        ) from None
    except (ValueError, RecursionError) as e:  # bad JSON, absurd nesting
        raise InputError(f"sweep spec {path} is not valid JSON: {e}.") from None
    return check_spec(spec, str(path))


def check_spec(spec, where: str = "sweep spec") -> dict:
    """`spec` if every part of it is valid (see `read_spec`), else an InputError."""
    if not isinstance(spec, dict):
        raise InputError(f"{where} must be a JSON object, got {_json_type(spec)}.")
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise InputError(
            f"sweep spec has unknown key(s) {sorted(unknown)}; allowed: {', '.join(SPEC_KEYS)}."
        )
    if not isinstance(spec.get("out"), str) or not spec["out"].strip():
        raise InputError(
            "sweep spec needs 'out': the directory (a non-empty string) that holds one run per "
            "point."
        )
    if not isinstance(spec.get("base", {}), dict):
        raise InputError(
            f"sweep spec 'base' must be an object of TrainConfig fields, got "
            f"{_json_type(spec['base'])}."
        )
    grid = spec.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise InputError("sweep spec 'grid' must map each field to a non-empty list of values.")
    if "retries" in spec:
        V.nonnegative_int("sweep spec 'retries'", spec["retries"])
    if "cpus_per_run" in spec:
        V.number("sweep spec 'cpus_per_run'", spec["cpus_per_run"], low=0, low_open=True)
    n_runs = math.prod(len(v) for v in grid.values())
    if n_runs > MAX_RUNS:
        raise InputError(f"sweep spec's grid has {n_runs:,} points; at most {MAX_RUNS:,}.")
    expand(spec)
    return spec


def _json_type(value) -> str:
    from icsim.training.config import _json_type as kind

    return kind(value)


def _set(data: dict, dotted: str, value, full: str) -> dict:
    head, _, rest = dotted.partition(".")
    if not rest:
        return {**data, head: value}
    inner = data.get(head, {})
    if not isinstance(inner, dict):
        raise InputError(
            f"sweep grid key {full!r}: {head!r} is not a nested config (it holds "
            f"{_json_type(inner)}); dotted keys reach only nested configs such as curriculum."
        )
    return {**data, head: _set(inner, rest, value, full)}


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def run_name(keys, cfg: TrainConfig) -> str:
    """A run directory's name from the parsed values of its grid point (so `1e-3` and `0.001`
    get one name), with only filename-safe characters."""
    parts = [f"{k.split('.')[-1]}={_get(cfg, k)}" for k in keys]
    return _SAFE.sub("_", "-".join(parts))[:200] or "run"


def expand(spec: dict) -> list[tuple[str, TrainConfig]]:
    """Every grid point as (run name, TrainConfig), checked before any run starts: an invalid
    point, two points that parse to the same config, or a name outside `out` is an InputError."""
    grid = spec.get("grid", {})
    keys = sorted(grid)
    for k in keys:
        if not k or any(not part for part in k.split(".")):
            raise InputError(
                f"sweep grid key {k!r} is not a field name (e.g. 'lr', 'curriculum.enabled')."
            )
    out = check_out(spec["out"], "sweep spec 'out'").resolve()
    runs, seen = [], {}
    for values in itertools.product(*(grid[k] for k in keys)):
        data = dict(spec.get("base", {}))
        for k, v in zip(keys, values):
            data = _set(data, k, v, k)
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, values)) or "the base config"
        cfg = from_dict(TrainConfig, data, f"sweep run {shown}")
        V.device(cfg.device)
        name = run_name(keys, cfg)
        if name in seen:
            raise InputError(
                f"sweep grid points {seen[name]} and {shown} are the same run once parsed (run "
                f"{name!r}); remove one of the equal values."
            )
        if (out / name).resolve().parent != out:
            raise InputError(f"sweep run name {name!r} would leave the sweep's out {out}.")
        seen[name] = shown
        runs.append((name, cfg))
    return runs


def finished(run_dir: Path, cfg: TrainConfig) -> bool:
    found = ckpt.latest_intact(run_dir) if run_dir.exists() else None
    return found is not None and found[1][2]["step"] >= cfg.steps


def train_one(cfg_dict: dict, run_dir: str) -> dict:
    """One run (in a Ray worker): resume it if it has a checkpoint, else start it."""
    from icsim.training import Trainer

    cfg = from_dict(TrainConfig, cfg_dict)
    run_dir = Path(run_dir)
    if run_dir.exists() and ckpt.latest_intact(run_dir) is not None:
        trainer = Trainer.resume(run_dir, quiet=True)
    else:
        trainer = Trainer(cfg, run_dir, quiet=True, overwrite=run_dir.exists())
    return {"run_dir": str(run_dir), **trainer.train()}


def _ray_log_to_file(path: Path) -> None:
    """Ray's Python loggers at warning level into `path` instead of the terminal (its start-up
    lines would bury the sweep's own progress); its C++ core logs at warning level too."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "warning")
    handler = logging.FileHandler(path)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("ray")
    logger.handlers = [handler]
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def run_sweep(spec: dict, *, address: str | None = None, quiet: bool = False) -> list[dict]:
    """Run every unfinished point of `spec` on Ray; return one row per run."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "icsim sweep needs Ray: install the extra with `pip install 'icsim[ray]'`."
        ) from None
    check_spec(spec)
    out = Path(spec["out"])
    runs = expand(spec)
    rows, todo = [], []
    for name, cfg in runs:
        if finished(out / name, cfg):
            rows.append({"run": name, "status": "skipped (finished before)"})
        else:
            todo.append((name, cfg))
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        _ray_log_to_file(out / "ray.log")
        ray.init(
            address=address,
            ignore_reinit_error=True,
            log_to_driver=False,  # the workers' own output stays in Ray's session logs
            include_dashboard=False,
            configure_logging=False,
            logging_level=logging.WARNING,
        )
        remote = ray.remote(
            num_cpus=spec.get("cpus_per_run", 1),
            max_retries=spec.get("retries", 2),
            retry_exceptions=True,
        )(train_one)
        refs = {name: remote.remote(replace(cfg).to_dict(), str(out / name)) for name, cfg in todo}
        for i, (name, ref) in enumerate(refs.items(), 1):
            try:
                rows.append({"run": name, "status": "done", **ray.get(ref)})
            except Exception as e:  # noqa: BLE001 - reported per run; the sweep goes on
                rows.append({"run": name, "status": f"failed: {type(e).__name__}: {e}"})
            if not quiet:
                print(f"[{i}/{len(refs)}] {name}: {rows[-1]['status']}", flush=True)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows
