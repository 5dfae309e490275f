"""The weights of `deep_gd`'s layers (Wu et al. 2025, Theorem 1; the recipe is in
`icsim.constructions.deep_gd`'s docstring): one writer per kind of layer of a GD block (forward
pass, r′ by a sum of ReLUs, loss derivative, EWML chain rule, update, projection) and `gd_layers`,
which stacks the blocks and writes them."""

from __future__ import annotations

import torch

from icsim.algorithms.deep_gd import relu_derivative
from icsim.models import zeroed
from icsim.models.construction_formats import TokenLayout
from icsim.models.ewml import EWMLConfig, LayerSpec
from icsim.tasks.relu_network import NetworkShape


def relu_sum_interpolant(f, radius: float, heads: int):
    """Knots t_m, coefficients c_m and constant c such that f̂(z) = c + Σ_m c_m ReLU(z − t_m) is
    the piecewise-linear interpolant of f on `heads` knots of spacing h = 2R/(heads − 1), one of
    them at 0 (so the grid is [−R, R] for odd `heads`), constant outside the knots (Bai et al.
    2023's sum-of-ReLUs approximation, one ReLU per head). For r′ = 1[z > 0]: c_m = ±1/h at the
    knots 0 and h, every other c_m = 0, f̂(z) = clip(z/h, 0, 1)."""
    h = 2 * radius / (heads - 1)
    t = (torch.arange(heads, dtype=torch.float64) - (heads - 1) // 2) * h
    vals = f(t)
    slopes = (vals[1:] - vals[:-1]) / h
    coef = torch.cat([slopes[:1], slopes[1:] - slopes[:-1], -slopes[-1:]])
    return t, coef, float(vals[0])


# ---- weights of the layers ------------------------------------------------------------------


def _set_attention(block, Q, K, V, P):
    """Q, K, V [H, hd, D] and P [D, H, hd] into an attention Block (head-major layout)."""
    H, hd, D = Q.shape
    a = block.attn
    a.q.weight.copy_(Q.reshape(H * hd, D))
    a.k.weight.copy_(K.reshape(H * hd, D))
    a.v.weight.copy_(V.reshape(H * hd, D))
    a.proj.weight.copy_(P.reshape(D, H * hd))


def _zeros(H, hd, D):
    z = torch.zeros
    return (
        z(H, hd, D, dtype=torch.float64),
        z(H, hd, D, dtype=torch.float64),
        z(H, hd, D, dtype=torch.float64),
        z(D, H, hd, dtype=torch.float64),
    )


def _forward_spec(shape, j):
    K = shape.widths
    return LayerSpec("attention", n_head=2 * K[j], head_dim=K[j - 1])


def _fill_forward(block, lay: TokenLayout, j: int):
    """Layer j: z_j = W_j p_{j−1} with heads (k, ±) scoring ReLU(±W_j[k]·p_{j−1})."""
    shape, K, N = lay.shape, lay.shape.widths, lay.shape.depth
    k_in, k_out, D = K[j - 1], K[j], lay.width
    Q, Kk, Vv, P = _zeros(2 * k_out, k_in, D)
    src, row0 = lay.input_of(j), lay.w + shape.offsets[j - 1]
    eye = torch.eye(k_in, dtype=torch.float64)
    for k in range(k_out):
        for s, sign in enumerate((1.0, -1.0)):
            h = 2 * k + s
            Q[h, :, src : src + k_in] = eye
            Kk[h, :, row0 + k * k_in : row0 + (k + 1) * k_in] = sign * eye
            Vv[h, 0, lay.one] = 1
            P[lay.z[j - 1] + k, h, 0] = sign
            if sign > 0 and j < N:
                P[lay.p[j - 1] + k, h, 0] = 1
    _set_attention(block, Q, Kk, Vv, P)


def _derivative_units(lay: TokenLayout) -> list[tuple[int, int]]:
    """Hidden units (j, l), j < N, whose r′ the derivative layer approximates."""
    K = lay.shape.widths
    return [(j, l) for j in range(1, lay.shape.depth) for l in range(K[j])]


def _unit_knots(coef, prune: bool) -> torch.Tensor:
    """Knot indices that get a head (all of them, or the non-zero ones when pruning)."""
    return torch.nonzero(coef).flatten() if prune else torch.arange(len(coef))


def _fill_derivative(block, lay: TokenLayout, knots, coef, const, prune: bool):
    """M_j[:, l] = r̂′(z_jl)·W_{j+1}[:, l]: head (j, l, m) scores ReLU(z_jl − t_m) and carries
    c_m·W_{j+1}[:, l] from the key's w̄; a constant r̂′(−∞) ≠ 0 gets one more head of score 1."""
    shape, K = lay.shape, lay.shape.widths
    H, hd = block.attn.cfg.n_head, block.attn.cfg.d_head
    Q, Kk, Vv, P = _zeros(H, hd, lay.width)
    idx = _unit_knots(coef, prune)
    per_unit = len(idx) + (const != 0)
    for u, (j, l) in enumerate(_derivative_units(lay)):
        a, b = u * per_unit, u * per_unit + len(idx)  # heads of this unit; b: the constant's
        Q[a:b, 0, lay.z[j - 1] + l], Q[a:b, 1, lay.one] = 1, 1
        Kk[a:b, 0, lay.one], Kk[a:b, 1, lay.one] = 1, -knots[idx]
        scale = coef[idx]
        if const != 0:
            Q[b, 1, lay.one], Kk[b, 1, lay.one] = 1, 1
            scale = torch.cat([scale, torch.tensor([const], dtype=torch.float64)])
        col = shape.offsets[j]  # W_{j+1}, [K_{j+1}, K_j] row-major
        for k in range(K[j + 1]):
            Vv[a : a + per_unit, k, lay.w + col + k * K[j] + l] = 1
            P[lay.m[j - 1] + k * K[j] + l, a : a + per_unit, k] = scale
    _set_attention(block, Q, Kk, Vv, P)


def _fill_loss(mlp, lay: TokenLayout):
    """δ_N = f − y = ReLU(f − y) − ReLU(y − f)."""
    fc, proj = mlp.mlp.fc.weight, mlp.mlp.proj.weight
    fc.zero_()
    proj.zero_()
    f = lay.z[-1]
    fc[0, f], fc[0, lay.y], fc[1, f], fc[1, lay.y] = 1, -1, -1, 1
    proj[lay.delta[-1], 0], proj[lay.delta[-1], 1] = 1, -1


def _ewml_hidden(shape: NetworkShape, j: int) -> int:
    K = shape.widths
    return K[j] * K[j - 1] * (2 if j > 1 else 1)


def _fill_ewml(layer, lay: TokenLayout, j: int):
    """G_j[k, l] = δ_jk p_{j−1,l} and δ_{j−1,l} = Σ_k δ_jk M_{j−1}[k, l]."""
    shape, K = lay.shape, lay.shape.widths
    A, B, P = layer.a.weight, layer.b.weight, layer.proj.weight
    for t in (A, B, P):
        t.zero_()
    u, src, g0 = 0, lay.input_of(j), lay.g + shape.offsets[j - 1]
    for k in range(K[j]):
        for l in range(K[j - 1]):
            A[u, lay.delta[j - 1] + k], B[u, src + l] = 1, 1
            P[g0 + k * K[j - 1] + l, u] = 1
            u += 1
            if j > 1:
                A[u, lay.delta[j - 1] + k], B[u, lay.m[j - 2] + k * K[j - 1] + l] = 1, 1
                P[lay.delta[j - 2] + l, u] = 1
                u += 1


def _fill_update(block, lay: TokenLayout, step_size: float):
    """w̄ ← w̄ − η·mean over context keys of G (score 1 on every key)."""
    D_w = lay.shape.n_params
    Q, Kk, Vv, P = _zeros(1, D_w, lay.width)
    Q[0, 0, lay.one], Kk[0, 0, lay.one] = 1, 1
    for c in range(D_w):
        Vv[0, c, lay.g + c] = 1
        P[lay.w + c, 0, c] = -step_size
    _set_attention(block, Q, Kk, Vv, P)


def _projection_hidden(lay: TokenLayout, radius) -> int:
    return 2 * (lay.scratch_end - lay.scratch) + (2 * lay.shape.n_params if radius else 0)


def _fill_projection(mlp, lay: TokenLayout, radius):
    """Clip w̄ to [−radius, radius] and zero the scratch, exactly, with ReLUs."""
    fc, proj = mlp.mlp.fc.weight, mlp.mlp.proj.weight
    fc.zero_()
    proj.zero_()
    u = 0
    for s in range(lay.scratch, lay.scratch_end):
        fc[u, s], fc[u + 1, s], proj[s, u], proj[s, u + 1] = 1, -1, -1, 1
        u += 2
    if radius is not None:
        for c in range(lay.w, lay.w + lay.shape.n_params):
            fc[u, c], fc[u, lay.one] = 1, -radius
            fc[u + 1, c], fc[u + 1, lay.one] = -1, -radius
            proj[c, u], proj[c, u + 1] = -1, 1
            u += 2


def gd_layers(
    shape: NetworkShape,
    lay: TokenLayout,
    *,
    steps: int,
    step_size: float,
    radius,
    heads: int,
    derivative_range: float,
    prune_heads: bool,
    readout: bool,
):
    """The zeroed EWML transformer of `steps` GD blocks (+ N read-out layers) with every layer's
    weights written, its layer specs, and the number of heads of the r′ layer."""
    N, K = shape.depth, shape.widths
    knots, coef, const = relu_sum_interpolant(relu_derivative, derivative_range, heads)
    n_dheads = len(_derivative_units(lay)) * (len(_unit_knots(coef, prune_heads)) + (const != 0))
    dhd = max([2] + [K[j + 1] for j in range(1, N)])
    block = (
        [_forward_spec(shape, j) for j in range(1, N + 1)]
        + [LayerSpec("attention", n_head=max(n_dheads, 1), head_dim=dhd)]
        + [LayerSpec("mlp", hidden=2)]
        + [LayerSpec("ewml", hidden=_ewml_hidden(shape, j)) for j in range(N, 0, -1)]
        + [LayerSpec("attention", n_head=1, head_dim=shape.n_params)]
        + [LayerSpec("mlp", hidden=_projection_hidden(lay, radius))]
    )
    specs = block * steps + ([_forward_spec(shape, j) for j in range(1, N + 1)] if readout else [])
    config = EWMLConfig(n_embd=lay.width, layers=tuple(specs), n_dims_out=1)
    model = zeroed("ewml_transformer", config)
    with torch.no_grad():
        layers = list(model.layers)
        for s in range(steps):
            ls = layers[s * (2 * N + 4) : (s + 1) * (2 * N + 4)]
            for j in range(1, N + 1):
                _fill_forward(ls[j - 1], lay, j)
            if n_dheads:
                _fill_derivative(ls[N], lay, knots, coef, const, prune_heads)
            _fill_loss(ls[N + 1], lay)
            for i, j in enumerate(range(N, 0, -1)):
                _fill_ewml(ls[N + 2 + i], lay, j)
            _fill_update(ls[2 * N + 2], lay, step_size)
            _fill_projection(ls[2 * N + 3], lay, radius)
        if readout:
            for j in range(1, N + 1):
                _fill_forward(layers[steps * (2 * N + 4) + j - 1], lay, j)
        model.read_out.weight[0, lay.z[-1]] = 1
    return model, specs, n_dheads
