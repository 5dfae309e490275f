from icsim.registry import Registry

ALGORITHMS = Registry("algorithm")
