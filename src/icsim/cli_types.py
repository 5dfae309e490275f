"""Dataclasses as parser types for `icsim.cli_args`: the flag helpers (`_arg`, `_flag`, `_command`),
a config mirrored field for field for `icsim train` (`_train_mirror`), a profile's fields as
optional override flags (`_override_mirror`, read back by `_overrides`) and `icsim reproduce
NAME`'s types. Nothing here imports torch (tyro is imported when a parser is built)."""

from __future__ import annotations

import types
from dataclasses import MISSING, asdict, field, fields, is_dataclass, make_dataclass
from typing import Annotated, Literal, Union, get_args, get_origin


def _arg(help: str, **kw):
    import tyro

    return tyro.conf.arg(help=help, **kw)


def _flag(help: str, **kw):
    """A bool flag that is off unless given (`--quiet`, not `--quiet/--no-quiet`)."""
    import tyro

    return Annotated[bool, tyro.conf.FlagCreatePairsOff, _arg(help, **kw)]


def _doc(cls, name: str) -> str:
    """A field's own one-line description: its docstring (or comment) in the source."""
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


def _train_mirror(cls, values: dict | None = None) -> type:
    """`cls` (TrainConfig, Curriculum) as a plain dataclass for the parser: the same fields and
    types, the class's defaults (or `values`, a --config file's), no checks (they run after
    parsing, on the real config; building no config here keeps torch out of `--help`)."""
    import typing

    hints = typing.get_type_hints(cls)
    specs = []
    for f in fields(cls):
        hint = hints[f.name]
        if values is not None and f.name in values:
            value = values[f.name]
        else:
            value = f.default if f.default_factory is MISSING else f.default_factory()
        if is_dataclass(hint):
            sub = _train_mirror(hint, asdict(value) if is_dataclass(value) else value)
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
        (
            "yes",
            _flag("start a run estimated at over an hour without asking"),
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


def _experiment_stub(name: str, header: dict) -> type:
    """A reproduction's entry in `icsim reproduce --help`: its title and cost, no flags (its
    own `icsim reproduce NAME --help` builds them)."""
    cost = "; ".join(f"{p}: {c}" for p, c in header.get("cost", {}).items())
    return _command(name.replace("-", "_"), [], header["title"] + (f" ({cost})" if cost else ""))


def _copy_field(f):
    if f.default_factory is not MISSING:
        return field(default_factory=f.default_factory)
    return field(default=f.default)


def one_of(options: list):
    """The union of `options` (tyro's subcommands): `Union[...]` of a list built at run time."""
    return Union[tuple(options)]  # noqa: UP007
