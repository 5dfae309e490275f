"""In-context tasks: `names()` lists the families, `get(name, **params)` builds one.

A family is one module that registers itself with `@TASKS.register(name)`; import it below.
"""

from icsim.tasks import linear_regression  # noqa: F401  (registers its tasks)
from icsim.tasks.base import Problem, Task, TaskBatch
from icsim.tasks.registry import TASKS

names = TASKS.names
get = TASKS.get

__all__ = ["Problem", "Task", "TaskBatch", "TASKS", "names", "get"]
