"""The token formats of the hand-built constructions (`icsim.constructions`), beside the
general ones in `formats`: named coordinate ranges (`Layout`), the Newton–Schulz matrix tokens,
the iterative-Newton regression tokens (Giannou et al. 2025) and the deep-GD tokens (Wu et al.
2025). Registered in `FORMATS` like every format."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.models.formats import FORMATS, Stacked, TokenFormat
from icsim.tasks.base import TaskBatch
from icsim.tasks.relu_network import NetworkShape


class Layout:
    """Named coordinate ranges of a token, in order: `Layout(x=3, y=1).y == slice(3, 4)`."""

    def __init__(self, **sizes: int):
        self._slices, start = {}, 0
        for name, size in sizes.items():
            self._slices[name] = slice(start, start + size)
            start += size
        self.width = start

    def __getattr__(self, name: str) -> slice:
        slices = self.__dict__.get("_slices", {})
        if name in slices:
            return slices[name]
        raise AttributeError(name)

    def names(self) -> list[str]:
        return list(self._slices)


@FORMATS.register("matrix")
@dataclass(frozen=True)
class MatrixTokens:
    """The tokens of a Newton–Schulz problem (A, X): d tokens, token i = [a_i; x_i; e_i; p_i]
    with a_i, x_i the i-th rows of A and X, e_i one-hot, p_i scratch (absent when symmetric).

    Every token attends to every token (no mask). `decode` turns the read-out [B, d, d] (token
    i's read-out = row i of X) back into X.
    """

    dim: int
    symmetric: bool = False

    def __post_init__(self):
        V.positive_int("dim", self.dim)

    @property
    def layout(self) -> Layout:
        d = self.dim
        return Layout(A=d, X=d, e=d) if self.symmetric else Layout(A=d, X=d, e=d, P=d)

    @property
    def width(self) -> int:
        return self.layout.width

    def encode(self, A: torch.Tensor, X0: torch.Tensor) -> torch.Tensor:
        d = self.dim
        if A.ndim != 3 or A.shape[1:] != (d, d) or X0.shape != A.shape:
            raise InputError(
                f"A and X0 must both have shape [B, {d}, {d}], got {tuple(A.shape)} and "
                f"{tuple(X0.shape)}."
            )
        if self.symmetric and not torch.allclose(A, A.transpose(1, 2)):
            raise InputError("symmetric=True needs a symmetric A; build with symmetric=False.")
        L = self.layout
        tokens = A.new_zeros(A.shape[0], d, L.width)
        tokens[..., L.A] = A
        tokens[..., L.X] = X0
        tokens[..., L.e] = torch.eye(d, dtype=A.dtype, device=A.device)
        return tokens

    def mask(self, n_points: int | None = None, device=None):
        return None

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        return out

    def run(self, model, A, X0, return_hidden: bool = False):
        """X after the whole model (and the hidden states)."""
        res = model(self.encode(A, X0), return_hidden=return_hidden)
        if return_hidden:
            return self.decode(res[0]), res[1]
        return self.decode(res)


@FORMATS.register("newton_regression")
@dataclass(frozen=True)
class NewtonRegressionTokens(TokenFormat):
    """A regression prompt plus d matrix tokens in which S = AᵀA and M_k live.

    Token layout [x (d); y; q; ŷ; e (d); S (d); M (d)], width 4d + 3:
      context token i: [a_i; y_i; 0; 0; 0; 0; 0]   (A = the context inputs as rows)
      matrix token j:  [0; 0; 0; 0; e_j; 0; 0]      (gets row j of S and M_k, and (Aᵀy)_j in y)
      query token:     [a_test; 0; 1; 0; 0; 0; 0]   (q = 1 marks a query; ŷ is its prediction)
    in the order context, matrix tokens, queries. Mask: context tokens attend to context tokens,
    matrix tokens to context and matrix tokens, a query to the matrix tokens and itself (so
    queries never see one another and each can overwrite its own ŷ).
    """

    dim: int
    n_queries: int = 1

    def __post_init__(self):
        V.positive_int("dim", self.dim)
        V.positive_int("n_queries", self.n_queries)

    @property
    def layout(self) -> Layout:
        d = self.dim
        return Layout(x=d, y=1, q=1, pred=1, e=d, S=d, M=d)

    @property
    def width(self) -> int:
        return self.layout.width

    def _n_context(self, n_points):
        if n_points <= self.n_queries:
            raise InputError(
                f"a prompt of {n_points} points leaves no context for {self.n_queries} queries; "
                "sample more points or use fewer queries."
            )
        return n_points - self.n_queries

    def encode(self, batch):
        B, n, d = batch.xs.shape
        if d != self.dim:
            raise InputError(f"prompts have dimension {d} but the format expects dim={self.dim}.")
        c, L = self._n_context(n), self.layout
        tokens = batch.xs.new_zeros(B, n + d, L.width)
        tokens[:, :c, L.x] = batch.xs[:, :c]
        tokens[:, :c, L.y] = batch.ys[:, :c, None]
        tokens[:, c : c + d, L.e] = torch.eye(d, dtype=batch.xs.dtype, device=batch.xs.device)
        tokens[:, c + d :, L.x] = batch.xs[:, c:]
        tokens[:, c + d :, L.q] = 1.0
        return tokens

    def mask(self, n_points, device=None):
        c, d = self._n_context(n_points), self.dim
        T = n_points + d
        m = torch.zeros(T, T, dtype=torch.bool, device=device)
        m[:c, :c] = True
        m[c : c + d, : c + d] = True
        m[c + d :, c : c + d] = True
        idx = torch.arange(c + d, T, device=device)
        m[idx, idx] = True
        return m

    def positions(self, n_points):
        c, d = self._n_context(n_points), self.dim
        return torch.arange(c + d, n_points + d)

    def targets(self, batch):
        return batch.ys[:, self._n_context(batch.n_points) :]


class TokenLayout:
    """Where every quantity lives in the token [x; y; w̄; scratch; 1; t] (start indices).

    Lists are per layer j = 1..N at index j−1: z (pre-activations, z_N = f), p (hidden
    activations, j < N), m (M_j = W_{j+1} diag(r̂′(z_j)), [K_{j+1}, K_j] row-major, j < N),
    delta (δ_j = ∂ℓ_i/∂z_j of the token's own loss ℓ_i = ½(f − y_i)²); g is the token's share
    G_i of the gradient (∇L_n = mean of G_i over the context), laid out as w̄.
    """

    def __init__(self, shape: NetworkShape):
        self.shape = shape
        K, N = shape.widths, shape.depth
        self._pos = 0
        self.x, self.y, self.w = self._take(shape.dim), self._take(1), self._take(shape.n_params)
        self.scratch = self._pos
        self.z = [self._take(K[j + 1]) for j in range(N)]
        self.p = [self._take(K[j + 1]) for j in range(N - 1)]
        self.m = [self._take(K[j + 2] * K[j + 1]) for j in range(N - 1)]
        self.delta = [self._take(K[j + 1]) for j in range(N)]
        self.g = self._take(shape.n_params)
        self.scratch_end = self._pos
        self.one, self.t = self._take(1), self._take(1)
        self.width = self._pos

    def _take(self, n: int) -> int:
        start, self._pos = self._pos, self._pos + n
        return start

    def input_of(self, j: int) -> int:
        """Start of p_{j−1}, the input of layer j (p_0 = x)."""
        return self.x if j == 1 else self.p[j - 2]


@FORMATS.register("deep_gd")
@dataclass(frozen=True)
class DeepGDFormat(TokenFormat):
    """Tokens h_i = [x_i; y_i; w̄⁽⁰⁾; 0; 1; t_i] (Wu et al. 2025, Thm 1), t_i = 1 on the context,
    queries [x_q; 0; w̄⁽⁰⁾; 0; 1; 0] last; keys and values are the context tokens (as `Stacked`).

    w̄⁽⁰⁾: `w0` ([D_w] or [B, D_w]) or, if None, `relu_network_gd`'s random start from `seed` and
    `init_scale`, so the algorithm with the same seed starts from the same weights.
    """

    dim: int
    depth: int
    net_width: int  # the network's hidden width K (`width` is the token's, as every format)
    n_queries: int = 1
    init_scale: float = 1.0
    seed: int = 0
    w0: torch.Tensor | None = field(default=None, compare=False)

    def __post_init__(self):
        V.positive_int("n_queries", self.n_queries)
        shape = NetworkShape(self.dim, self.depth, self.net_width)
        object.__setattr__(self, "_layout", TokenLayout(shape))

    @property
    def layout(self) -> TokenLayout:
        return self._layout

    @property
    def shape(self) -> NetworkShape:
        return self._layout.shape

    @property
    def _stacked(self) -> Stacked:
        return Stacked(self.dim, self.n_queries)

    @property
    def width(self) -> int:
        return self._layout.width

    def initial_weights(self, batch: TaskBatch) -> torch.Tensor:
        B, D = batch.batch_size, self.shape.n_params
        if self.w0 is None:
            from icsim.algorithms.deep_gd import initial_weights  # the algorithm's own start

            return initial_weights(self.shape, B, self.seed, self.init_scale, batch.xs)
        w0 = torch.as_tensor(self.w0, dtype=batch.xs.dtype, device=batch.xs.device)
        if w0.shape not in ((D,), (B, D)):
            raise InputError(f"w0 must have shape [{D}] or [{B}, {D}], got {list(w0.shape)}.")
        return w0.expand(B, D)

    def encode(self, batch: TaskBatch) -> torch.Tensor:
        if batch.dim != self.dim:
            raise InputError(
                f"the construction was built for dim={self.dim}, the batch has dim={batch.dim}; "
                "build it with the batch's dimension."
            )
        lay, (B, n, d) = self._layout, batch.xs.shape
        n_ctx = self._stacked._n_context(n)
        tokens = batch.xs.new_zeros(B, n, lay.width)
        tokens[..., lay.x : lay.x + d] = batch.xs
        tokens[:, :n_ctx, lay.y] = batch.ys[:, :n_ctx]
        tokens[..., lay.w : lay.w + self.shape.n_params] = self.initial_weights(batch)[:, None]
        tokens[..., lay.one] = 1
        tokens[:, :n_ctx, lay.t] = 1
        return tokens

    def mask(self, n_points, device=None):
        return self._stacked.mask(n_points, device)

    def positions(self, n_points):
        return self._stacked.positions(n_points)

    def targets(self, batch):
        return self._stacked.targets(batch)

    def read_weights(self, hidden: torch.Tensor) -> torch.Tensor:
        """w̄ from hidden states [..., B, T, D]: the first token's slot, [..., B, D_w]."""
        lay = self._layout
        return hidden[..., 0, lay.w : lay.w + self.shape.n_params]
