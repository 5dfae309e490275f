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
from dataclasses import replace
from pathlib import Path

from icsim.errors import InputError
from icsim.training import checkpoint as ckpt
from icsim.training.config import TrainConfig, from_dict

SPEC_KEYS = ("out", "base", "grid", "retries", "cpus_per_run")


def read_spec(path: str | Path) -> dict:
    """Read and check a sweep spec (JSON only: no code runs from a spec file)."""
    try:
        spec = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read sweep spec {path}: {e.strerror}.") from None
    except json.JSONDecodeError as e:
        raise InputError(f"sweep spec {path} is not valid JSON: {e}.") from None
    if not isinstance(spec, dict):
        raise InputError(f"sweep spec {path} must be a JSON object.")
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise InputError(
            f"sweep spec has unknown key(s) {sorted(unknown)}; allowed: {', '.join(SPEC_KEYS)}."
        )
    grid = spec.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise InputError("sweep spec 'grid' must map each field to a non-empty list of values.")
    if "out" not in spec:
        raise InputError("sweep spec needs 'out': the directory that holds one run per point.")
    return spec


def _set(data: dict, dotted: str, value) -> dict:
    head, _, rest = dotted.partition(".")
    if not rest:
        return {**data, head: value}
    return {**data, head: _set(data.get(head, {}), rest, value)}


def expand(spec: dict) -> list[tuple[str, TrainConfig]]:
    """Every grid point as (run name, TrainConfig), checked before any run starts."""
    grid = spec.get("grid", {})
    keys = sorted(grid)
    runs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        data = dict(spec.get("base", {}))
        for k, v in zip(keys, values):
            data = _set(data, k, v)
        name = "-".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values)) or "run"
        runs.append((name, from_dict(TrainConfig, data, f"sweep run {name}")))
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


def run_sweep(spec: dict, *, address: str | None = None, quiet: bool = False) -> list[dict]:
    """Run every unfinished point of `spec` on Ray; return one row per run."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "icsim sweep needs Ray: install the extra with `pip install 'icsim[ray]'`."
        ) from None
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
        ray.init(
            address=address,
            ignore_reinit_error=True,
            log_to_driver=not quiet,
            include_dashboard=False,
        )
        remote = ray.remote(
            num_cpus=spec.get("cpus_per_run", 1),
            max_retries=spec.get("retries", 2),
            retry_exceptions=True,
        )(train_one)
        refs = {name: remote.remote(replace(cfg).to_dict(), str(out / name)) for name, cfg in todo}
        for name, ref in refs.items():
            try:
                rows.append({"run": name, "status": "done", **ray.get(ref)})
            except Exception as e:  # noqa: BLE001 - reported per run; the sweep goes on
                rows.append({"run": name, "status": f"failed: {type(e).__name__}: {e}"})
    (out / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows
