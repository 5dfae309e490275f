"""Regression on the outputs of a random N-layer ReLU network, one network per prompt
(Wu, Su, Hu, Song, Liu 2025, "Transformers are Deep Optimizers", §5 experiments).

The network is f(w̄, x) = W_N r(W_{N−1} ⋯ r(W_1 x)) with r = ReLU, no biases, hidden width K and
one output: W_1 ∈ R^{K×d}, W_2..W_{N−1} ∈ R^{K×K}, W_N ∈ R^{1×K}. Its weights are flattened into
one vector w̄ (row-major W_1, then W_2, ..., then W_N), the layout the algorithms and the `deep_gd`
construction share. `NetworkShape` holds the layout; `network_forward` evaluates the network
batched over problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.tasks.base import TASKS, Task, TaskBatch


@dataclass(frozen=True)
class NetworkShape:
    """Widths of an N-layer ReLU network d → K → ⋯ → K → 1 (`depth` = N weight matrices)."""

    dim: int
    depth: int
    width: int

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        V.positive_int("depth", self.depth)
        V.positive_int("width", self.width)

    @property
    def widths(self) -> tuple[int, ...]:
        """(d, K, ..., K, 1): the input, the N−1 hidden layers and the output."""
        return (self.dim,) + (self.width,) * (self.depth - 1) + (1,)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of W_1..W_N."""
        w = self.widths
        return [(w[j + 1], w[j]) for j in range(self.depth)]

    @property
    def offsets(self) -> list[int]:
        """Where W_j starts in w̄ (and, last, the total D_w)."""
        out = [0]
        for o, i in self.layer_shapes:
            out.append(out[-1] + o * i)
        return out

    @property
    def n_params(self) -> int:
        """D_w, the length of w̄."""
        return self.offsets[-1]

    def unflatten(self, w: torch.Tensor) -> list[torch.Tensor]:
        """w̄ [..., D_w] -> [W_1, ..., W_N], each [..., out, in] (views)."""
        if w.shape[-1] != self.n_params:
            raise InputError(
                f"weights have {w.shape[-1]} entries but a network of shape {self} has "
                f"{self.n_params}; pass a flat w̄ of that length."
            )
        off = self.offsets
        return [
            w[..., off[j] : off[j + 1]].unflatten(-1, self.layer_shapes[j])
            for j in range(self.depth)
        ]

    def flatten(self, mats: list[torch.Tensor]) -> torch.Tensor:
        """[W_1, ..., W_N] (each [..., out, in]) -> w̄ [..., D_w]."""
        return torch.cat([m.flatten(-2) for m in mats], dim=-1)


def network_forward(shape: NetworkShape, w: torch.Tensor, X: torch.Tensor, return_all=False):
    """f(w̄, x_i) for w̄ [B, D_w] (or its matrices [W_1, ..., W_N] as `shape.unflatten` gives
    them) and X [B, n, d] -> [B, n].

    With `return_all`, also the pre-activations z_j = W_j p_{j−1} and the activations
    p_j = r(z_j) (p_0 = x) of every layer, lists of [B, n, K_j], for backpropagation.
    """
    mats = shape.unflatten(w) if isinstance(w, torch.Tensor) else w
    p, zs, ps = X, [], [X]
    for j, W in enumerate(mats):
        z = torch.einsum("bni,boi->bno", p, W)
        zs.append(z)
        if j < shape.depth - 1:
            p = torch.relu(z)
            ps.append(p)
    out = zs[-1][..., 0]
    return (out, zs, ps) if return_all else out


def sample_network_weights(
    shape: NetworkShape,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device="cpu",
    dtype=torch.float64,
    scale: float = 1.0,
    fan_in_scaling: bool = True,
) -> torch.Tensor:
    """B flat weight vectors w̄ [B, D_w] with independent Gaussian entries.

    fan_in_scaling=True (He et al. 2015): entries of W_j ~ N(0, scale²·g/fan_in) with gain g = 2
    for layers followed by a ReLU and 1 for the output layer, so E f(x)² ≈ scale²·E‖x‖²/d at any
    depth. False: entries ~ N(0, scale²), the paper's literal "N(0, I)" when scale = 1 (then f
    grows like (K/2)^{(N−1)/2}·‖x‖).
    """
    parts = []
    for j, (o, i) in enumerate(shape.layer_shapes):
        std = scale
        if fan_in_scaling:
            gain = 2.0 if j < shape.depth - 1 else 1.0
            std = scale * math.sqrt(gain / i)
        g = torch.randn(batch_size, o * i, generator=generator, device=device, dtype=dtype)
        parts.append(g * std)
    return torch.cat(parts, dim=-1)


def _mixture(mixture) -> tuple[float, float]:
    try:
        w1, w2 = (float(v) for v in mixture)
    except (TypeError, ValueError):
        raise InputError(
            f"mixture must be a pair of weights (w1, w2), e.g. (1, 0), got {mixture!r}."
        ) from None
    if not (math.isfinite(w1) and math.isfinite(w2)) or w1 < 0 or w2 < 0 or w1 + w2 == 0:
        raise InputError(
            f"mixture weights must be finite, >= 0 and not both 0, got {mixture!r}; "
            "e.g. (1, 0) for training, (0.5, 0.5) or (0, 1) for shift tests."
        )
    return w1 / (w1 + w2), w2 / (w1 + w2)


@TASKS.register("relu_network_regression")
class ReluNetworkRegression(Task):
    """y = f(x) + σε with f a random N-layer ReLU network per prompt and x from the mixture
    w₁·N(−μ·1, I) + w₂·N(μ·1, I) (Wu et al. 2025, §5; μ = 2).

    Parameters
    - dim: d (default 20, as the paper).
    - depth: N, the number of weight matrices (default 3; the paper uses 3, 4 and 6).
    - width: hidden width K (default 20; the paper does not state it).
    - weight_scale, fan_in_scaling: see `sample_network_weights`. Default: He scaling with scale
      1, which keeps y of order 1 (E y² ≈ E‖x‖²/d = 1 + μ² = 5 for μ = 2) at every depth. The
      paper draws "N(0, I)" weights, i.e. `fan_in_scaling=False, weight_scale=1`, whose outputs
      grow like (K/2)^{(N−1)/2}·‖x‖ (std(y) ≈ 100 for d = K = 20, N = 3).
    - mixture: (w₁, w₂), normalised (default (1, 0), the paper's training distribution; test
      shifts with e.g. (0.5, 0.5) or (0, 1)).
    - mean_shift: μ (default 2).
    - noise_std: σ >= 0 (default 0).

    truth: `w_star` [B, D_w], the network's flat weights (layout of `NetworkShape`), and
    `component` [B, n] (bool, True where x came from the +μ component).
    """

    name = "relu_network_regression"

    def __init__(
        self,
        dim: int = 20,
        depth: int = 3,
        width: int = 20,
        weight_scale: float = 1.0,
        fan_in_scaling: bool = True,
        mixture: tuple[float, float] = (1.0, 0.0),
        mean_shift: float = 2.0,
        noise_std: float = 0.0,
    ):
        self.shape = NetworkShape(dim, depth, width)
        self.dim, self.depth, self.width = dim, depth, width
        self.weight_scale = V.number("weight_scale", weight_scale, low=0)
        if not isinstance(fan_in_scaling, bool):
            raise InputError(f"fan_in_scaling must be True or False, got {fan_in_scaling!r}.")
        self.fan_in_scaling = fan_in_scaling
        self.mixture = _mixture(mixture)
        self.mean_shift = V.number("mean_shift", mean_shift)
        self.noise_std = V.number("noise_std", noise_std, low=0)

    def _sample(self, batch_size, n_points, gen, device, dtype, active_dims):
        B, n, d = batch_size, n_points, self.dim
        u = torch.rand(B, n, generator=gen, device=device, dtype=dtype)
        component = u < self.mixture[1]
        mean = torch.where(component, self.mean_shift, -self.mean_shift).to(dtype)
        xs = torch.randn(B, n, d, generator=gen, device=device, dtype=dtype) + mean[..., None]
        if active_dims is not None and active_dims < d:
            xs[..., active_dims:] = 0
        w = sample_network_weights(
            self.shape,
            B,
            generator=gen,
            device=device,
            dtype=dtype,
            scale=self.weight_scale,
            fan_in_scaling=self.fan_in_scaling,
        )
        ys = network_forward(self.shape, w, xs)
        if self.noise_std > 0:
            ys = ys + self.noise_std * torch.randn(B, n, generator=gen, device=device, dtype=dtype)
        return TaskBatch(xs=xs, ys=ys, task=self.name, truth={"w_star": w, "component": component})
