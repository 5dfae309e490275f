"""Hand-built weights: `build(name, **params)` returns (model, token_format), an ordinary
`icsim.models` model whose forward pass carries out an algorithm. A construction is one module of
this package that registers itself with `@CONSTRUCTIONS.register(name)`."""

from icsim.constructions.registry import CONSTRUCTIONS
from icsim.registry import import_submodules

import_submodules(__name__)

names = CONSTRUCTIONS.names
build = CONSTRUCTIONS.get

__all__ = ["CONSTRUCTIONS", "names", "build"]
