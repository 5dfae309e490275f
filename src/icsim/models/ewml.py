"""The element-wise multiplication layer (EWML) and a model that mixes it with standard layers.

The EWML is the non-standard component of Wu et al. 2025 ("Transformers are Deep Optimizers",
Theorem 1): their (2N+4)L-layer construction needs, per GD step, N layers that multiply two
token-local quantities for the chain rule (δ_j ⊗ p_{j−1} and W_jᵀδ_j), which neither attention
(it mixes tokens) nor a ReLU MLP (it cannot multiply exactly) does. Our layer is the bilinear map

    h ← h + P((A h) ⊙ (B h)),      A, B: R^D → R^m,  P: R^m → R^D,

applied to every token separately (no bias: the tokens carry a constant 1 for affine terms).
It is our reading of the paper's EWML (no public code): the construction only uses it to form
products of pairs of coordinates, which this map does exactly.

`EWMLTransformer` stacks residual layers of three kinds, each as wide as the token, so a
construction can say which layer does what: "attention" (an attention-only
`icsim.models.transformer.Block`, no LayerNorm), "mlp" (h + MLP(h)) and "ewml". It has the
forward contract of every icsim model: `forward(tokens, mask=None, return_hidden=False)` -> out
[B, T, n_out] (and the hidden state after the input and after every layer, [L+1, B, T, D]).
There is no read-in, positional embedding or final LayerNorm: tokens are the hidden state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from icsim import _validate as V
from icsim.errors import InputError
from icsim.models.transformer import ATTENTIONS, MLP, MODELS, Block, ModelConfig

LAYER_KINDS = ("attention", "mlp", "ewml")


class EWML(nn.Module):
    """Element-wise multiplication layer h ← h + P((A h) ⊙ (B h)) (Wu et al. 2025, Thm 1's
    chain-rule layer; see the module docstring)."""

    def __init__(self, n_embd: int, hidden: int, bias: bool = False):
        super().__init__()
        self.a = nn.Linear(n_embd, hidden, bias=bias)
        self.b = nn.Linear(n_embd, hidden, bias=bias)
        self.proj = nn.Linear(hidden, n_embd, bias=bias)

    def forward(self, x, mask=None):
        return x + self.proj(self.a(x) * self.b(x))


class ResidualMLP(nn.Module):
    """h ← h + MLP(h), the MLP of `icsim.models.transformer` without LayerNorm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mlp = MLP(cfg)

    def forward(self, x, mask=None):
        return x + self.mlp(x)


@dataclass(frozen=True)
class LayerSpec:
    """One residual layer: kind attention (n_head heads of head_dim), mlp or ewml (hidden units)."""

    kind: str
    n_head: int = 1
    head_dim: int = 1
    hidden: int = 1

    def __post_init__(self):
        V.choice("kind", self.kind, LAYER_KINDS)
        for name in ("n_head", "head_dim", "hidden"):
            V.positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class EWMLConfig:
    """Shape of an `EWMLTransformer`: token width, the layers in order, the read-out width."""

    n_embd: int
    layers: tuple[LayerSpec, ...]
    n_dims_out: int = 1
    attention: str = "relu"  # softmax | linear | relu, for every attention layer
    activation: str = "relu"  # of the MLP layers
    bias: bool = False
    causal: bool = False  # mask used when the caller passes none

    def __post_init__(self):
        V.positive_int("n_embd", self.n_embd)
        V.positive_int("n_dims_out", self.n_dims_out)
        V.choice("attention", self.attention, ATTENTIONS)
        V.choice("activation", self.activation, ("gelu", "relu"))
        layers = tuple(LayerSpec(**s) if isinstance(s, dict) else s for s in self.layers)
        if not layers or not all(isinstance(s, LayerSpec) for s in layers):
            raise InputError("layers must be a non-empty sequence of LayerSpec (or their dicts).")
        object.__setattr__(self, "layers", layers)

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict:
        return asdict(self)

    def block_config(self, spec: LayerSpec) -> ModelConfig:
        """The ModelConfig of one attention or MLP layer (no LayerNorm, no read-in)."""
        return ModelConfig(
            n_dims_in=self.n_embd,
            n_layer=1,
            n_head=spec.n_head,
            n_embd=self.n_embd,
            head_dim=spec.head_dim,
            attention=self.attention,
            mlp=False,
            mlp_hidden=spec.hidden,
            activation=self.activation,
            layer_norm=False,
            positional=False,
            read_in=False,
            bias=self.bias,
            causal=self.causal,
        )


@MODELS.register("ewml_transformer")
class EWMLTransformer(nn.Module):
    """Residual attention / MLP / EWML layers in any order, then a linear read-out."""

    def __init__(self, config: EWMLConfig | dict):
        super().__init__()
        cfg = EWMLConfig(**config) if isinstance(config, dict) else config
        self.cfg = cfg
        layers = []
        for spec in cfg.layers:
            if spec.kind == "attention":
                layers.append(Block(cfg.block_config(spec)))
            elif spec.kind == "mlp":
                layers.append(ResidualMLP(cfg.block_config(spec)))
            else:
                layers.append(EWML(cfg.n_embd, spec.hidden, cfg.bias))
        self.layers = nn.ModuleList(layers)
        self.read_out = nn.Linear(cfg.n_embd, cfg.n_dims_out, bias=cfg.bias)

    @property
    def n_layers(self) -> int:
        return self.cfg.n_layer

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens, mask=None, return_hidden=False):
        if tokens.shape[-1] != self.cfg.n_embd:
            raise InputError(
                f"tokens have width {tokens.shape[-1]} but the model expects "
                f"n_embd={self.cfg.n_embd}."
            )
        h = tokens
        hidden = [h]
        for layer in self.layers:
            h = layer(h, mask)
            hidden.append(h)
        out = self.read_out(h)
        return (out, torch.stack(hidden)) if return_hidden else out


__all__ = ["EWML", "EWMLConfig", "EWMLTransformer", "LayerSpec", "ResidualMLP"]
