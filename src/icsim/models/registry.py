from icsim.registry import Registry

MODELS = Registry("model")
