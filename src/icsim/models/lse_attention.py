"""Softmax attention that also writes its log-normaliser, and a model of such layers.

The exact EM construction (`icsim.constructions.em_step`, PAPERS.md §7) needs, after the
E-step head γ_ik = softmax_k(s_ik), each point's log-normaliser log Σ_k exp(s_ik): with it the
M-step weights γ_ik / Σ_j γ_jk are a softmax over points. A softmax head computes that
normaliser anyway (flash-attention kernels return it as `lse`); `LSEAttention` adds it to the
residual stream through a linear map of its own:

    h ← h + P · softmax(QKᵀ/√hd) V + P_lse · lse,   lse_{h,i} = log Σ_{j allowed} exp(q_i·k_j/√hd).

With P_lse = 0 it is ordinary softmax attention (no LayerNorm, no bias by default).

`LSETransformer` is `icsim.models.ewml.EWMLTransformer` (residual attention / ReLU MLP / EWML
layers in any order, tokens = hidden state, linear read-out) whose attention layers are
`LSEAttention`; it has the forward contract of every icsim model.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from icsim.models.ewml import EWMLConfig, EWMLTransformer
from icsim.models.transformer import MODELS


class LSEAttention(nn.Module):
    """Residual multi-head softmax attention writing each head's log-normaliser (see module).
    `mask` [T, T] or [B, T, T], True = may attend; a query with no allowed key gets 0."""

    def __init__(self, n_embd: int, n_head: int, head_dim: int, bias: bool = False):
        super().__init__()
        self.n_head, self.head_dim = n_head, head_dim
        inner = n_head * head_dim
        self.q = nn.Linear(n_embd, inner, bias=bias)
        self.k = nn.Linear(n_embd, inner, bias=bias)
        self.v = nn.Linear(n_embd, inner, bias=bias)
        self.proj = nn.Linear(inner, n_embd, bias=bias)
        self.lse_proj = nn.Linear(n_head, n_embd, bias=bias)

    def forward(self, x, mask=None):
        B, T, _ = x.shape
        H, hd = self.n_head, self.head_dim
        q, k, v = (f(x).view(B, T, H, hd).transpose(1, 2) for f in (self.q, self.k, self.v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B, H, T, T]
        if mask is not None:
            mask = mask.unsqueeze(1) if mask.dim() == 3 else mask
            scores = scores.masked_fill(~mask, float("-inf"))
        lse = torch.logsumexp(scores, -1, keepdim=True)
        lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        out = torch.exp(scores - lse) @ v
        out = self.proj(out.transpose(1, 2).reshape(B, T, H * hd))
        return x + out + self.lse_proj(lse[..., 0].transpose(1, 2))


@MODELS.register("lse_transformer")
class LSETransformer(EWMLTransformer):
    """`EWMLTransformer` with `LSEAttention` layers (softmax attention + log-normaliser)."""

    def __init__(self, config: EWMLConfig | dict):
        cfg = EWMLConfig(**config) if isinstance(config, dict) else config
        super().__init__(replace(cfg, attention="softmax"))
        for i, spec in enumerate(self.cfg.layers):
            if spec.kind == "attention":
                self.layers[i] = LSEAttention(cfg.n_embd, spec.n_head, spec.head_dim, cfg.bias)


__all__ = ["LSEAttention", "LSETransformer"]
