from icsim.registry import Registry

CONSTRUCTIONS = Registry("construction")
