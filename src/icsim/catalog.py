"""What `icsim list` and `icsim describe` show: each registered entry's one-line description,
its parameters with their defaults (read off the registered factory's signature), the paper it
comes from, and for a reproduction its title and cost.

`experiment_headers()` reads the experiments' names, titles and costs from their source files
(the `@EXPERIMENTS.register` decorators) without importing them, so `icsim --help` and
`icsim reproduce --help` load no torch.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, field
from pathlib import Path

from icsim.errors import did_you_mean

KINDS = ("tasks", "algorithms", "models", "formats", "constructions", "experiments")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    summary: str  # the first line of the docstring
    params: dict = field(default_factory=dict)  # name -> default (or "required")
    paper: str = ""
    cost: dict = field(default_factory=dict)  # experiments: {"quick": ..., "full": ...}


def experiment_headers() -> dict[str, dict]:
    """{name: {"title", "cost"}} of every experiment module, read from source (no imports)."""
    root = Path(__file__).parent / "experiments"
    out = {}
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and (name := _registered(node, "EXPERIMENTS")):
                attrs = _class_constants(node)
                title = attrs.get("title") or docstring_header(ast.get_docstring(node))[0]
                out[name] = {"title": title, "cost": attrs.get("cost", {})}
    return dict(sorted(out.items()))


def docstring_header(doc: str | None) -> tuple[str, str]:
    """(title, citation): an experiment docstring's first two paragraphs, each on one line."""
    paragraphs = [" ".join(p.split()) for p in inspect.cleandoc(doc or "").split("\n\n")]
    return paragraphs[0], paragraphs[1] if len(paragraphs) > 1 else ""


def _registered(node, registry: str) -> str | None:
    for d in node.decorator_list:
        if (
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and d.func.attr == "register"
            and registry in (getattr(d.func.value, "id", None), getattr(d.func.value, "attr", None))
            and d.args
            and isinstance(d.args[0], ast.Constant)
        ):
            return d.args[0].value
    return None


def _class_constants(node: ast.ClassDef) -> dict:
    out = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(stmt.value)
                except ValueError:  # not a literal (computed at import): left out
                    pass
    return out


def first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


def _params(factory) -> dict:
    """Keyword parameters of a factory (a class: its __init__/dataclass fields) with defaults."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    out = {}
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name == "self":
            continue
        out[name] = "required" if p.default is p.empty else p.default
    return out


def _model_params() -> dict:
    """A model's parameters: the fields of the ModelConfig every model is built from."""
    from dataclasses import MISSING, fields

    from icsim.models import ModelConfig

    return {
        f.name: "required" if f.default is MISSING and f.default_factory is MISSING else f.default
        for f in fields(ModelConfig)
    }


def _paper(obj) -> str:
    """The paper an entry comes from: an experiment's citation, else the module docstring's
    first line when it names one (an author and a year)."""
    citation = getattr(obj, "citation", "")
    if citation:
        return citation
    import re

    author = r"(?:(?:von|van|de|der) )?[A-Z][\w-]+"
    cite = rf"({author}(?: et al\.|,? (?:and|&) {author})?,? (?:19|20)\d\d[a-z]?)"
    for text in (inspect.getdoc(obj) or "", inspect.getdoc(inspect.getmodule(obj)) or ""):
        m = re.search(cite, text)
        if m:
            return m.group(1)
    return ""


REGISTRIES = {  # kind -> (module, registry)
    "tasks": ("icsim.tasks.base", "TASKS"),
    "algorithms": ("icsim.algorithms.base", "ALGORITHMS"),
    "models": ("icsim.models.transformer", "MODELS"),
    "formats": ("icsim.models.formats", "FORMATS"),
    "constructions": ("icsim.constructions.base", "CONSTRUCTIONS"),
    "experiments": ("icsim.experiments.base", "EXPERIMENTS"),
}


def _registry(kind: str):
    import importlib

    module, name = REGISTRIES[kind]
    return getattr(importlib.import_module(module), name)


def entries(kind: str) -> list[Entry]:
    """Every entry of one registry, described."""
    reg = _registry(kind)
    out = []
    for name in reg.names():
        factory = reg.factory(name)
        if kind == "experiments":
            exp = factory() if isinstance(factory, type) else factory
            params = {p: _profile_summary(exp.profiles[p]) for p in exp.profiles}
            out.append(Entry(kind, name, exp.title or first_line(exp), params, _paper(exp),
                             dict(getattr(exp, "cost", {}))))  # fmt: skip
        else:
            params = _model_params() if kind == "models" else _params(factory)
            out.append(Entry(kind, name, first_line(factory), params, _paper(factory)))
    return out


def _profile_summary(cfg) -> str:
    """A profile's headline sizes (its training steps, layers, dim) in one short phrase."""
    from dataclasses import fields, is_dataclass

    bits = []
    if is_dataclass(cfg):
        for f in fields(cfg):
            v = getattr(cfg, f.name)
            if is_dataclass(v) and hasattr(v, "steps"):
                bits.append(f"{f.name}: {v.steps:,} steps")
    return "; ".join(bits) or type(cfg).__name__


def find(name: str) -> Entry:
    """The entry called `name` in any registry (an InputError with a did-you-mean otherwise)."""
    from icsim.errors import InputError

    seen = []
    for kind in KINDS:
        for e in entries(kind):
            if e.name == name:
                return e
            seen.append(e.name)
    raise InputError(
        f"nothing is registered as {name!r}.{did_you_mean(name, seen)} "
        "`icsim list` shows every name."
    )


def describe(e: Entry) -> str:
    """The text of `icsim describe NAME`."""
    lines = [f"{e.name} ({e.kind[:-1]})", f"  {e.summary}" if e.summary else ""]
    if e.paper:
        lines.append(f"  paper: {e.paper}")
    if e.params:
        what = "profiles" if e.kind == "experiments" else "parameters (default)"
        lines.append(f"  {what}:")
        lines += [f"    {k} = {_show(v)}" for k, v in e.params.items()]
    for profile, cost in e.cost.items():
        lines.append(f"  cost of --profile {profile}: {cost}")
    if e.kind == "experiments":
        lines.append(f"  run: icsim reproduce {e.name} --profile quick")
    return "\n".join(ln for ln in lines if ln)


def _show(v) -> str:
    return v if isinstance(v, str) else repr(v)
