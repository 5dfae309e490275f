"""Hand-built weights: `build(name, **params)` returns (model, token_format), an ordinary
`icsim.models` model whose forward pass carries out an algorithm. A construction is one module of
this package that registers its build function and its check with
`@CONSTRUCTIONS.register(name, check=...)`; `icsim.constructions.verify.verify(name)` runs the
check."""

from icsim.constructions.base import CONSTRUCTIONS

names = CONSTRUCTIONS.names
build = CONSTRUCTIONS.get

__all__ = ["CONSTRUCTIONS", "names", "build"]
