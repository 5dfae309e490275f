"""In-context tasks: `names()` lists the families, `get(name, **params)` builds one.

A family is one module of this package that registers itself with `@TASKS.register(name)`
(`TASKS` lives beside the `Task` base class; its first lookup imports every family).
"""

from icsim.tasks.base import TASKS, Problem, Task, TaskBatch

names = TASKS.names
get = TASKS.get

__all__ = ["Problem", "Task", "TaskBatch", "TASKS", "names", "get"]
