"""Every attention variant against a direct einsum implementation written here."""

import math

import pytest
import torch

from icsim.models import ModelConfig, Transformer, attend
from icsim.models.transformer import Attention

B, T, E = 3, 7, 8


def _reference(x, attn, n_head, kind, mask, normalize):
    """Multi-head attention from the module's weight matrices, one einsum at a time.

    mask: [T, T] or [B, T, T] booleans (True = attend), already including causality.
    """
    hd = attn.q.weight.shape[0] // n_head

    def heads(lin):  # [B, T, E] -> [B, H, T, hd]
        return (x @ lin.weight.T + lin.bias).reshape(B, T, n_head, hd).permute(0, 2, 1, 3)

    q, k, v = heads(attn.q), heads(attn.k), heads(attn.v)
    scores = torch.einsum("bhid,bhjd->bhij", q, k)
    m = mask if mask.dim() == 2 else mask[:, None]
    m = m.expand(B, n_head, T, T)
    if kind == "softmax":
        scores = (scores / math.sqrt(hd)).masked_fill(~m, -math.inf)
        weights = torch.softmax(scores, dim=-1)
    else:
        if kind == "relu":
            scores = scores.clamp(min=0)
        weights = scores * m
        if kind == "relu" or normalize:
            weights = weights / m.sum(-1, keepdim=True)  # number of keys per query
    y = torch.einsum("bhij,bhjd->bhid", weights, v)
    y = y.permute(0, 2, 1, 3).reshape(B, T, n_head * hd)
    return y @ attn.proj.weight.T + attn.proj.bias


def _attention(kind, n_head, normalize=False, causal=True, head_dim=None):
    torch.manual_seed(1)
    cfg = ModelConfig(
        n_dims_in=E,
        n_embd=E,
        n_head=n_head,
        head_dim=head_dim,
        attention=kind,
        normalize_attention=normalize,
        causal=causal,
    )
    attn = Attention(cfg).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.5)
    return attn


def _masks():
    g = torch.Generator().manual_seed(3)
    custom = torch.rand(T, T, generator=g) < 0.5
    custom[:, 0] = True  # every query has at least one key
    batched = torch.rand(B, T, T, generator=g) < 0.5
    batched[..., 1] = True
    return {"custom": custom, "batched": batched}


CASES = [
    (kind, n_head, normalize)
    for kind in ("softmax", "linear", "relu")
    for n_head in (1, 2)
    for normalize in (False, True)
    if not (kind != "linear" and normalize)
]


@pytest.mark.parametrize("kind,n_head,normalize", CASES)
def test_attention_matches_einsum_with_default_causal_mask(kind, n_head, normalize):
    attn = _attention(kind, n_head, normalize)
    x = torch.randn(B, T, E, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    expected = _reference(x, attn, n_head, kind, causal, normalize)
    torch.testing.assert_close(attn(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,n_head,normalize", CASES)
@pytest.mark.parametrize("which", ["custom", "batched", "none"])
def test_attention_matches_einsum_with_custom_mask(kind, n_head, normalize, which):
    attn = _attention(kind, n_head, normalize, causal=False)
    x = torch.randn(B, T, E, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if which == "none":  # non-causal, no mask: every token attends to all T tokens
        mask, ref_mask = None, torch.ones(T, T, dtype=torch.bool)
    else:
        mask = ref_mask = _masks()[which]
    expected = _reference(x, attn, n_head, kind, ref_mask, normalize)
    torch.testing.assert_close(attn(x, mask), expected, rtol=1e-12, atol=1e-12)


def test_linear_attention_normalisation_divides_by_the_number_of_keys():
    q = torch.ones(1, 1, 3, 1, dtype=torch.float64)
    k = torch.ones(1, 1, 3, 1, dtype=torch.float64)
    v = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64).reshape(1, 1, 3, 1)
    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    raw = attend(q, k, v, "linear", mask, causal=False, normalize=False)[0, 0, :, 0]
    norm = attend(q, k, v, "linear", mask, causal=False, normalize=True)[0, 0, :, 0]
    assert raw.tolist() == [1.0, 3.0, 7.0]
    torch.testing.assert_close(norm, torch.tensor([1.0, 1.5, 7.0 / 3.0], dtype=torch.float64))
    relu = attend(-q, k, v, "relu", mask, causal=False, normalize=False)[0, 0, :, 0]
    assert relu.tolist() == [0.0, 0.0, 0.0]  # ReLU of negative scores


def test_explicit_head_dim_wider_than_n_embd_over_n_head():
    attn = _attention("linear", n_head=2, head_dim=6)
    assert attn.q.weight.shape == (12, E)
    x = torch.randn(B, T, E, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    expected = _reference(x, attn, 2, "linear", causal, False)
    torch.testing.assert_close(attn(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["softmax", "linear", "relu"])
def test_head_count_changes_the_computation(kind):
    """The same weights split into 1 or 2 heads give different outputs."""
    torch.manual_seed(0)
    common = dict(n_dims_in=E, n_embd=E, n_layer=2, attention=kind, layer_norm=False)
    one = Transformer(ModelConfig(n_head=1, **common)).double()
    with torch.no_grad():
        for p in one.parameters():
            p.normal_(0, 0.5)
    two = Transformer(ModelConfig(n_head=2, **common)).double()
    two.load_state_dict(one.state_dict())
    x = torch.randn(B, T, E, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert (one(x) - two(x)).abs().max() > 1e-3
