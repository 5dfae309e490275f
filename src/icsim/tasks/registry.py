from icsim.registry import Registry

TASKS = Registry("task")
