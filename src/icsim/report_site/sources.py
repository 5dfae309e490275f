"""What `icsim atlas` can run on: a trained run directory (`icsim train`), a reproduction
directory holding trained runs, or a construction named `NAME[:key=value,...]`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from icsim.errors import InputError

#: a construction's steps when none is given (enough layers to see a trend)
CONSTRUCTION_STEPS = 4


@dataclass
class Source:
    """One model to draw an atlas of, with what `icsim.analysis.atlas` needs beside it."""

    label: str  # e.g. "train-transformer" or "gd(steps=4)"
    model: object
    fmt: object
    task: object
    n_points: int
    extra: list  # extra atlas columns (a construction's own algorithm and hyper-parameters)
    sample: object = None


def trained_runs(path: Path) -> list[Path]:
    """`path` itself if it is a run directory (it has checkpoints), else the run directories
    one or two levels below it (a reproduction's train-*, or train-*/seed_*), sorted."""
    from icsim.training.checkpoint import list_checkpoints

    if list_checkpoints(path):
        return [path]
    if not path.is_dir():
        return []
    below = [*path.glob("*/checkpoints"), *path.glob("*/*/checkpoints")]
    return sorted(p.parent for p in below if list_checkpoints(p.parent))


def sources(target: str, device: str = "cpu") -> list[Source]:
    """Every model `target` names (see the module doc); an InputError naming what was expected
    when it names none."""
    from icsim.constructions import CONSTRUCTIONS

    if not target:
        raise InputError("no run given; pass a run directory, a reproduction directory or a "
                         "construction name (icsim list shows them).")  # fmt: skip
    name = target.split(":", 1)[0]
    path = Path(target)
    if not path.exists() and name in CONSTRUCTIONS:
        return [construction_source(target)]
    runs = trained_runs(path) if path.is_dir() else []
    if not runs:
        what = "does not exist" if not path.exists() else "holds no trained model (checkpoints/)"
        raise InputError(
            f"{target!r} {what}: give a run directory of icsim train, a reproduction directory "
            f"holding trained runs, or a construction ({', '.join(CONSTRUCTIONS.names())})."
        )
    return [trained_source(r, path, device) for r in runs]


def trained_source(run: Path, root: Path, device: str) -> Source:
    from icsim.training import load_trained
    from icsim.training.config import build_task

    try:
        model, fmt, cfg = load_trained(run, device)
    except KeyError as e:  # a checkpoint folder icsim did not write
        raise InputError(f"{run} is not a run of icsim train (its checkpoint lacks {e}).") from None
    label = run.name if run != root else (run.resolve().name or "run")
    return Source(label, model, fmt, build_task(cfg), cfg.n_points, [])


def _kv(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def construction_source(spec: str) -> Source:
    """`NAME[:key=value,...]`, e.g. `gd:steps=6,dim=5`: the construction (default steps 4), its
    check's prompts (`verify`'s: 3d context examples, its queries and normalisation) and its own
    algorithm as an extra column."""
    from icsim.algorithms import ALGORITHMS
    from icsim.constructions import CONSTRUCTIONS, build
    from icsim.constructions.base import info_of

    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        if not eq:
            raise InputError(f"construction parameter {item!r} needs key=value, e.g. gd:steps=4.")
        params[key.strip()] = _value(val.strip())
    check = CONSTRUCTIONS.meta(name)["check"]()
    params = {"steps": CONSTRUCTION_STEPS, **check.default_params, **params}
    model, fmt = build(name, **params)
    info = info_of(model)
    task = check.make_task(info)
    n_ctx = 3 * info.dim
    n_queries = getattr(fmt, "n_queries", 1)

    def sample(n, points, n_context, generator):
        return check.sample(info, fmt, n, generator=generator, n_context=points - n_queries)[0]

    cls = ALGORITHMS.factory(info.algorithm)
    own = {
        "name": f"{info.algorithm}({_kv(info.hyperparameters)})",
        "algorithm": info.algorithm,
        "params": dict(info.hyperparameters),
        "steps": sorted(set(cls.step_grid) | set(range(info.steps + 1))),
    }
    label = f"{name}({_kv(params)})"
    return Source(label, model, fmt, task, n_ctx + n_queries, [own], sample)
