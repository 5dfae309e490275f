"""One name -> factory registry, the pattern shared by tasks, algorithms, models, token formats,
constructions and experiments.

Each registry is defined beside its base class (`icsim.tasks.base.TASKS`, ...) and knows its
package: the first lookup imports every module of that package, so a family registers itself
with `@REGISTRY.register("name")` in its own module, whoever imported what before (nothing
central to edit, and `import icsim.tasks` alone stays light).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable

from icsim.errors import InputError, did_you_mean, unknown_name


class Registry:
    """`register(name, **meta)` decorates a factory (`meta`: e.g. a construction's check);
    `names()`, `factory(name)`, `meta(name)`, `get(name, **params)` look it up."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._factories: dict[str, Callable] = {}
        self._meta: dict[str, dict] = {}
        self._scanned = package is None

    def register(self, name: str, **meta) -> Callable:
        def deco(factory):
            if name in self._factories:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._factories[name] = factory
            self._meta[name] = meta
            return factory

        return deco

    def _scan(self) -> None:
        """Import every public module of the package once (each registers itself)."""
        if self._scanned:
            return
        self._scanned = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        self._scan()
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        self._scan()
        return name in self._factories

    def factory(self, name: str) -> Callable:
        self._scan()
        if name not in self._factories:
            raise unknown_name(self.kind, name, self._factories)
        return self._factories[name]

    def meta(self, name: str) -> dict:
        """What `name` was registered with besides its factory."""
        self.factory(name)
        return self._meta[name]

    def get(self, name: str, **params):
        """Build `name` with `params`; an unknown parameter raises an InputError."""
        factory = self.factory(name)
        check_params(f"{self.kind} {name!r}", factory, params)
        return factory(**params)


def check_params(what: str, factory: Callable, params: dict) -> None:
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = [n for n, p in sig.parameters.items() if p.kind is not p.VAR_POSITIONAL]
    for key in params:
        if key not in allowed:
            raise InputError(
                f"{what} has no parameter {key!r}.{did_you_mean(key, allowed)} "
                f"Allowed: {', '.join(allowed) or '(none)'}."
            )


def lazy_submodules(package: str, names: tuple[str, ...]):
    """A PEP 562 module `__getattr__` importing `package.NAME` on first access, for NAME in
    `names` (so `import icsim` costs nothing until `icsim.models` is used)."""

    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
