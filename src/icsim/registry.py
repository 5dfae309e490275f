"""A name -> factory registry shared by tasks, algorithms, models, constructions and experiments.

A new family registers itself with `@REGISTRY.register("name")` in its own module; nothing
central needs editing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from icsim.errors import InputError, did_you_mean, unknown_name


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable] = {}

    def register(self, name: str) -> Callable:
        def deco(factory):
            if name in self._factories:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        return sorted(self._factories)

    def factory(self, name: str) -> Callable:
        if name not in self._factories:
            raise unknown_name(self.kind, name, self._factories)
        return self._factories[name]

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


def import_submodules(package: str) -> None:
    """Import every module of `package` so that each registers itself: adding a family is adding
    a module, with no central list to edit."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
