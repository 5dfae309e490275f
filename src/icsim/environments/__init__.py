"""Sequential decision environments (bandits), batched and seeded, and the policies that play
them: `names()` lists the families, `get(name, **params)` builds one; `POLICIES` the policies.

A family is one module of this package that registers itself with `@ENVIRONMENTS.register(name)`.
"""

from icsim.environments.base import ENVIRONMENTS, BanditBatch, Environment

names = ENVIRONMENTS.names
get = ENVIRONMENTS.get

__all__ = ["BanditBatch", "Environment", "ENVIRONMENTS", "names", "get"]
