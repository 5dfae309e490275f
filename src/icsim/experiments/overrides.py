"""A profile's config changed by name: dotted overrides (`icsim reproduce NAME --train.steps
200`), checked against the fields they replace, and the cuts of a `--smoke` run."""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass, replace

from icsim.errors import InputError

# -- overrides and smoke runs ---------------------------------------------------------------
# A smoke run trains every TrainConfig in the profile for SMOKE_STEPS steps on a tiny batch at
# its final prompt length (no curriculum): each stage runs once at the real shapes, in seconds.
SMOKE_STEPS = 2
SMOKE_BATCH = 4


def ends(values: tuple) -> tuple:
    """The first and the last of `values` (all if fewer than three): a smoke run's cut of a list
    of shapes (depths, widths, condition numbers) that still runs the profile's extremes."""
    return tuple(values) if len(values) < 3 else (values[0], values[-1])


def smoke_cuts(exp, cfg) -> dict:
    """Dotted overrides that cut `cfg` to a smoke run: the generic rules for every TrainConfig
    and `RunSettings` in it, then the experiment's own `smoke` cuts (evaluation sizes, training
    settings of its own)."""
    from icsim.training.config import TrainConfig
    from icsim.training.settings import RunSettings

    cuts = {}
    for path, value in _walk(cfg):
        if isinstance(value, (TrainConfig, RunSettings)):
            rule = {"steps": SMOKE_STEPS, "batch_size": min(value.batch_size, SMOKE_BATCH),
                    "log_every": 1}  # fmt: skip
            if isinstance(value, TrainConfig):
                rule |= {"warmup_steps": 0, "checkpoint_every": SMOKE_STEPS,
                         "curriculum.enabled": False}  # fmt: skip
            cuts |= {f"{path}{key}": v for key, v in rule.items()}
    own = getattr(exp, "smoke", {})  # a dict, or a function of the profile's config
    return {**cuts, **(own(cfg) if callable(own) else own)}


def _walk(obj, prefix: str = ""):
    """(dotted prefix, value) of `obj` and of every dataclass nested in it."""
    yield prefix, obj
    if is_dataclass(obj):
        for f in fields(obj):
            yield from _walk(getattr(obj, f.name), f"{prefix}{f.name}.")


def apply_overrides(cfg, overrides: dict):
    """`cfg` with dotted fields replaced (`{"train.steps": 200, "eval_prompts": 64}`); dicts
    inside a config are reached the same way. Unknown fields and values of the wrong type are
    InputErrors; each dataclass's own checks run on the result."""
    for key, value in overrides.items():
        cfg = _set(cfg, key.split("."), value, key)
    return cfg


def _set(obj, parts: list[str], value, key: str):
    head, rest = parts[0], parts[1:]
    if is_dataclass(obj):
        names = {f.name for f in fields(obj)}
        if head not in names:
            from icsim.errors import did_you_mean

            raise InputError(
                f"override {key!r}: {type(obj).__name__} has no field {head!r}."
                f"{did_you_mean(head, names)} Allowed: {', '.join(sorted(names))}."
            )
        current = getattr(obj, head)
        if rest:
            if current is None:
                raise InputError(f"override {key!r}: {head} is off (None) in this profile.")
            return replace(obj, **{head: _set(current, rest, value, key)})
        return replace(obj, **{head: _typed(current, value, key)})
    if isinstance(obj, dict):
        if head not in obj:
            allowed = ", ".join(sorted(map(str, obj))) or "none"
            raise InputError(f"override {key!r}: no key {head!r} here; allowed: {allowed}.")
        new = dict(obj)
        new[head] = _set(obj[head], rest, value, key) if rest else _typed(obj[head], value, key)
        return new
    raise InputError(f"override {key!r}: {head!r} is not a field of a config (a plain value).")


def _typed(current, value, key: str):
    """`value` checked against the kind of the value it replaces (ints stay ints; an int may
    replace a float; tuples and lists become tuples); None-valued fields take anything."""
    if current is None or value is None:
        return value
    if isinstance(current, bool) or isinstance(value, bool):
        ok = isinstance(current, bool) and isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    elif isinstance(current, (tuple, list)):
        ok = isinstance(value, (tuple, list))
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise InputError(
            f"override {key!r} must be {type(current).__name__} like the profile's "
            f"{current!r}, got {value!r}."
        )
    return value


def _asdict(cfg):
    return asdict(cfg) if is_dataclass(cfg) else cfg
