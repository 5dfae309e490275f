"""Models (transformer, looped transformer, LSTM) and token formats."""

from icsim.models.formats import FORMATS, Interleaved, Stacked, TokenFormat, get_format
from icsim.models.transformer import (
    LSTM,
    MODELS,
    Block,
    LoopedTransformer,
    ModelConfig,
    Transformer,
    attend,
    build,
    flops_per_token,
    zeroed,
)

names = MODELS.names

__all__ = [
    "FORMATS",
    "Interleaved",
    "Stacked",
    "TokenFormat",
    "get_format",
    "MODELS",
    "LSTM",
    "Block",
    "LoopedTransformer",
    "ModelConfig",
    "Transformer",
    "attend",
    "build",
    "flops_per_token",
    "zeroed",
    "names",
]
