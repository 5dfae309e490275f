"""In-context tasks: `names()` lists the families, `get(name, **params)` builds one.

A family is one module of this package that registers itself with `@TASKS.register(name)`.
"""

from icsim.registry import import_submodules
from icsim.tasks.base import Problem, Task, TaskBatch
from icsim.tasks.registry import TASKS

import_submodules(__name__)

names = TASKS.names
get = TASKS.get

__all__ = ["Problem", "Task", "TaskBatch", "TASKS", "names", "get"]
