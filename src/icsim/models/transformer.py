"""A GPT-2-style decoder with pluggable attention, a looped variant, and an LSTM baseline.

One file a reader can hold in their head (nanoGPT). Every model maps tokens [B, T, n_dims_in]
to outputs [B, T, n_dims_out] through a linear read-in and read-out, and with
`return_hidden=True` also returns the hidden state after the embedding and after every layer,
stacked as [L+1, B, T, n_embd] (the final LayerNorm is *not* applied to them, so every layer's
state is comparable).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from icsim import _validate as V
from icsim.errors import InputError
from icsim.registry import Registry

#: every model kind, by name: `@MODELS.register(name)` beside the class (build() looks it up)
MODELS = Registry("model", package="icsim.models")

ATTENTIONS = ("softmax", "linear", "relu")
ACTIVATIONS = ("gelu", "relu", "gelu_tanh")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a transformer. Defaults: Garg et al. 2022's GPT-2 (12 layers, 8 heads, 256 wide)."""

    n_dims_in: int = 21  # token width (d + 1 for the interleaved format)
    n_dims_out: int = 1
    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    head_dim: int | None = None  # default n_embd // n_head; constructions use wider heads
    attention: str = "softmax"  # softmax | linear | relu
    normalize_attention: bool = False  # linear attention: divide by the number of keys
    mlp: bool = True
    mlp_hidden: int | None = None  # default 4 * n_embd
    activation: str = "gelu"  # gelu | relu | gelu_tanh (GPT-2's `gelu_new`, imported models)
    layer_norm: bool = True  # pre-LayerNorm in every block and before the read-out
    positional: bool = True  # learned positional embedding
    max_positions: int = 256
    read_in: bool = True  # False: tokens are the hidden state (width must equal n_embd)
    bias: bool = True
    causal: bool = True  # mask used when the caller passes none
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("n_dims_in", "n_dims_out", "n_layer", "n_head", "n_embd", "max_positions"):
            V.positive_int(name, getattr(self, name))
        V.choice("attention", self.attention, ATTENTIONS)
        V.choice("activation", self.activation, ACTIVATIONS)
        V.number("dropout", self.dropout, low=0, high=1, high_open=True)
        if self.head_dim is None and self.n_embd % self.n_head:
            raise InputError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                "choose n_embd as a multiple of n_head or set head_dim."
            )
        if not self.read_in and self.n_dims_in != self.n_embd:
            raise InputError(
                f"read_in=False needs n_dims_in == n_embd, got {self.n_dims_in} and {self.n_embd}."
            )

    @property
    def d_head(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)


def attend(q, k, v, kind: str, mask: torch.Tensor | None, causal: bool, normalize: bool):
    """Multi-head attention on q, k, v [B, H, T, hd]; `mask` [T, T] or [B, T, T], True = attend.

    softmax: softmax(qkᵀ/√hd) v; linear: (qkᵀ) v, divided by the number of keys if `normalize`
    (von Oswald et al. 2023); relu: ReLU(qkᵀ) v / number of keys (Bai et al. 2023, eq. 2).
    """
    T = q.shape[-2]
    if mask is None and causal:
        mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    if mask is not None and mask.dim() == 3:
        mask = mask.unsqueeze(1)  # broadcast over heads
    if kind == "softmax":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = q @ k.transpose(-1, -2)
    if kind == "relu":
        scores = F.relu(scores)
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    if kind == "relu" or normalize:
        n_keys = mask.sum(-1, keepdim=True).clamp(min=1) if mask is not None else T
        scores = scores / n_keys
    return scores @ v


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        inner = cfg.n_head * cfg.d_head
        self.q = nn.Linear(cfg.n_embd, inner, bias=cfg.bias)
        self.k = nn.Linear(cfg.n_embd, inner, bias=cfg.bias)
        self.v = nn.Linear(cfg.n_embd, inner, bias=cfg.bias)
        self.proj = nn.Linear(inner, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask=None):
        B, T, _ = x.shape
        H, hd = self.cfg.n_head, self.cfg.d_head
        q, k, v = (f(x).view(B, T, H, hd).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = attend(q, k, v, self.cfg.attention, mask, self.cfg.causal, self.cfg.normalize_attention)
        return self.drop(self.proj(y.transpose(1, 2).reshape(B, T, H * hd)))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = cfg.mlp_hidden or 4 * cfg.n_embd
        self.fc = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        acts = {"gelu": nn.GELU, "relu": nn.ReLU, "gelu_tanh": lambda: nn.GELU("tanh")}
        self.act = acts[cfg.activation]()
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LN residual block: x + attn(ln(x)), then x + mlp(ln(x)) when the MLP is on."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        norm = (lambda: nn.LayerNorm(cfg.n_embd)) if cfg.layer_norm else nn.Identity
        self.ln_1, self.attn = norm(), Attention(cfg)
        self.ln_2, self.mlp = (norm(), MLP(cfg)) if cfg.mlp else (None, None)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        return x


class _ReadInOut(nn.Module):
    """Read-in, positional embedding, final LayerNorm and read-out shared by every model."""

    def _init_io(self, cfg: ModelConfig):
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.n_dims_in, cfg.n_embd) if cfg.read_in else nn.Identity()
        self.wpe = nn.Embedding(cfg.max_positions, cfg.n_embd) if cfg.positional else None
        self.ln_f = nn.LayerNorm(cfg.n_embd) if cfg.layer_norm else nn.Identity()
        self.read_out = nn.Linear(cfg.n_embd, cfg.n_dims_out, bias=cfg.bias)

    def embed(self, tokens):
        if tokens.shape[-1] != self.cfg.n_dims_in:
            raise InputError(
                f"tokens have width {tokens.shape[-1]} but the model expects "
                f"n_dims_in={self.cfg.n_dims_in}."
            )
        h = self.read_in(tokens)
        if self.wpe is not None:
            T = tokens.shape[1]
            if T > self.cfg.max_positions:
                raise InputError(
                    f"sequence of {T} tokens exceeds max_positions={self.cfg.max_positions}; "
                    "build the model with a larger max_positions."
                )
            h = h + self.wpe(torch.arange(T, device=tokens.device))
        return h

    def head(self, h):
        return self.read_out(self.ln_f(h))

    @property
    def n_layers(self) -> int:
        raise NotImplementedError

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@MODELS.register("transformer")
class Transformer(_ReadInOut):
    """L blocks with their own weights."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__()
        cfg = config or ModelConfig(**overrides)
        self._init_io(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        _init_gpt2(self, cfg.n_layer)

    @property
    def n_layers(self) -> int:
        return self.cfg.n_layer

    def forward(self, tokens, mask=None, return_hidden=False):
        h = self.embed(tokens)
        hidden = [h]
        for block in self.blocks:
            h = block(h, mask)
            hidden.append(h)
        out = self.head(h)
        return (out, torch.stack(hidden)) if return_hidden else out


@MODELS.register("looped")
class LoopedTransformer(_ReadInOut):
    """One block applied T times with the embedded input re-injected every loop
    (Yang et al. 2024): h_{t+1} = block(h_t + e), h_0 = 0. T defaults to `n_layer`."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__()
        cfg = config or ModelConfig(**overrides)
        self._init_io(cfg)
        self.block = Block(cfg)
        _init_gpt2(self, 1)  # one block, as Yang et al.'s GPT-2 with n_layer = 1

    @property
    def n_layers(self) -> int:
        return self.cfg.n_layer

    def forward(self, tokens, mask=None, return_hidden=False, n_loops: int | None = None):
        n_loops = V.positive_int("n_loops", self.cfg.n_layer if n_loops is None else n_loops)
        e = self.embed(tokens)
        h = torch.zeros_like(e)
        hidden = [e]
        for _ in range(n_loops):
            h = self.block(h + e, mask)
            hidden.append(h)
        out = self.head(h)
        return (out, torch.stack(hidden)) if return_hidden else out


@MODELS.register("lstm")
class LSTM(_ReadInOut):
    """An LSTM baseline with the same read-in/read-out (Fu et al. 2024 use 10 layers).

    One single-layer nn.LSTM per layer so that every layer's hidden state is returned.
    Attention options of the config are ignored; the model is causal by construction.
    """

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__()
        cfg = config or ModelConfig(**{"positional": False, **overrides})
        self._init_io(cfg)
        self.layers = nn.ModuleList(
            nn.LSTM(cfg.n_embd, cfg.n_embd, batch_first=True) for _ in range(cfg.n_layer)
        )

    @property
    def n_layers(self) -> int:
        return self.cfg.n_layer

    def forward(self, tokens, mask=None, return_hidden=False):
        if mask is not None:
            raise InputError(
                "the LSTM is causal by construction and takes no attention mask; "
                "use the interleaved token format with it."
            )
        h = self.embed(tokens)
        hidden = [h]
        for lstm in self.layers:
            h = lstm(h)[0]
            hidden.append(h)
        out = self.head(h)
        return (out, torch.stack(hidden)) if return_hidden else out


def _init_gpt2(model: _ReadInOut, n_blocks: int):
    """GPT-2's initialisation (as Hugging Face's GPT2Model, which Garg et al. wrap): N(0, 0.02)
    weights and zero biases; with LayerNorm (GPT-2 blocks) the projections back into the
    residual stream are scaled by 1/sqrt(2 n_blocks) (Radford et al. 2019, §2.3) and read-in and
    read-out keep PyTorch's default init, as in Garg et al.'s code where they sit outside
    GPT2Model. Without that scaling an 8-layer width-64 GPT-2 stays at the zero predictor.
    LayerNorm-free models (von Oswald et al.'s linear self-attention) keep N(0, 0.02)
    everywhere: each layer is a product of small weights, and shrinking one factor more keeps a
    5-layer one at the zero saddle."""
    gpt2 = model.cfg.layer_norm
    for name, module in model.named_modules():
        if gpt2 and name.startswith(("read_in", "read_out")):
            continue
        if isinstance(module, (nn.Linear, nn.Embedding)):
            residual = gpt2 and name.endswith(".proj")
            nn.init.normal_(module.weight, std=0.02 / math.sqrt(2 * n_blocks) if residual else 0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)


def build(kind: str, config: ModelConfig | dict):
    """Build a registered model from a config (a ModelConfig or its dict, e.g. from JSON)."""
    if isinstance(config, dict):
        from icsim.registry import check_params

        check_params("model config", ModelConfig, config)
        config = ModelConfig(**config)
    return MODELS.factory(kind)(config)


def zeroed(kind: str, config, dtype: torch.dtype = torch.float64) -> nn.Module:
    """Registered model `kind` of `config` with every weight zero (each residual layer the
    identity), in `dtype`: the blank the constructions write their weights into. The random
    init is drawn and discarded under a forked RNG, so the caller's random state is untouched."""
    with torch.random.fork_rng(devices=[]):
        model = MODELS.factory(kind)(config).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward FLOPs per token (2 per multiply-add) from the model's shape, attention included."""
    inner = cfg.n_head * cfg.d_head
    per_layer = 2 * (3 * cfg.n_embd * inner + inner * cfg.n_embd)  # q, k, v, proj
    per_layer += 2 * 2 * seq_len * inner  # scores and weighted sum
    if cfg.mlp:
        per_layer += 2 * 2 * cfg.n_embd * (cfg.mlp_hidden or 4 * cfg.n_embd)
    io = 2 * (cfg.n_dims_in * cfg.n_embd + cfg.n_embd * cfg.n_dims_out)
    return cfg.n_layer * per_layer + io


__all__ = ["ModelConfig", "Transformer", "LoopedTransformer", "LSTM", "build", "zeroed"]
