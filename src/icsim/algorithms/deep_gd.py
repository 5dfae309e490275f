"""Training an N-layer ReLU network on the context: in-context gradient descent with projection
(what the `deep_gd` construction carries out; Wu et al. 2025, Theorem 1) and the paper's baseline,
the same network trained directly with Adam.

Loss (Bai et al. 2023's convention, as `gradient_descent`): L_n(w̄) = 1/(2n) Σ_i (f(w̄, x_i) − y_i)²
with f the network of `icsim.tasks.relu_network` (no biases, one output) and w̄ its flat weights,
so a state is w̄ [B, D_w], batched over problems. The gradient is computed by backpropagation with
batched einsums (`loss_gradient`); r′(0) = 0, as torch's autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from icsim import _validate as V
from icsim._fused import fused_adam_devices as _fused_devices
from icsim.algorithms.base import ALGORITHMS, Algorithm, Trajectory
from icsim.errors import InputError
from icsim.tasks.base import Problem, TaskBatch
from icsim.tasks.relu_network import NetworkShape, network_forward, sample_network_weights

NORMS = ("linf", "l2")


def relu_derivative(z: torch.Tensor) -> torch.Tensor:
    """r′(z) = 1[z > 0] (0 at z = 0, as torch's autograd)."""
    return (z > 0).to(z.dtype)


def ramp_derivative(width: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """r̂′(z) = clip(z/h, 0, 1): r′ with its jump replaced by a ramp of width h on [0, h], the
    ReLU-sum approximation (1/h)(ReLU(z) − ReLU(z − h)) the `deep_gd` construction computes."""
    return lambda z: torch.clamp(z / width, 0, 1)


def training_loss(shape: NetworkShape, w: torch.Tensor, X: torch.Tensor, y: torch.Tensor):
    """L_n(w̄) = 1/(2n) Σ_i (f(w̄, x_i) − y_i)² per problem, [B]; 0 when n = 0."""
    r = network_forward(shape, w, X) - y
    return 0.5 * (r * r).sum(-1) / max(X.shape[1], 1)


def layer_gradients(
    shape: NetworkShape,
    mats: list[torch.Tensor],
    X: torch.Tensor,
    y: torch.Tensor,
    derivative: Callable[[torch.Tensor], torch.Tensor] = relu_derivative,
) -> list[torch.Tensor]:
    """∂L_n/∂W_j [B, out, in] for the matrices [W_1, ..., W_N] by backpropagation (the chain rule
    the construction's EWMLs carry out), one batched GEMM per product.

    δ_N = (f − y)/n, ∂L/∂W_j = Σ_i δ_j,i p_{j−1,i}ᵀ, δ_{j−1} = (W_jᵀ δ_j) ⊙ r′(z_{j−1}).
    `derivative` replaces r′ (the construction's verifier passes its ReLU-sum approximation).
    """
    out, zs, ps = network_forward(shape, mats, X, return_all=True)
    delta = ((out - y) / max(X.shape[1], 1)).unsqueeze(-1)  # [B, n, 1]
    grads = [None] * shape.depth
    for j in reversed(range(shape.depth)):
        o, i = shape.layer_shapes[j]
        # MKL's batched GEMM is slow with a few output columns (W_1 on d = 5 inputs: 4× slower)
        grads[j] = torch.bmm(ps[j].mT, delta).mT.contiguous() if i < o else delta.mT @ ps[j]
        if j > 0:
            delta = torch.bmm(delta, mats[j])
            if derivative is relu_derivative:  # δ ⊙ 1[z > 0] in one pass, no mask allocated
                delta = torch.ops.aten.threshold_backward(delta, zs[j - 1], 0)
            else:
                delta.mul_(derivative(zs[j - 1]))
    return grads


def loss_gradient(
    shape: NetworkShape,
    w: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    derivative: Callable[[torch.Tensor], torch.Tensor] = relu_derivative,
) -> torch.Tensor:
    """∇L_n(w̄) [B, D_w]: `layer_gradients` of w̄'s matrices, flattened as w̄."""
    return shape.flatten(layer_gradients(shape, shape.unflatten(w), X, y, derivative))


def project(w: torch.Tensor, radius: float | None, norm: str = "linf") -> torch.Tensor:
    """Euclidean projection of every row of w̄ [B, D_w] onto W = {‖w̄‖ ≤ radius} (None: R^{D_w}).

    linf: clip every entry to [−radius, radius] (an MLP computes it exactly); l2: scale rows with
    ‖w̄‖₂ > radius back onto the sphere.
    """
    if radius is None:
        return w
    if norm == "linf":
        return w.clamp(-radius, radius)
    nrm = w.norm(dim=-1, keepdim=True)
    return w * torch.where(nrm > radius, radius / nrm.clamp(min=radius), 1.0)


def initial_weights(shape: NetworkShape, batch_size: int, seed: int, scale: float, like):
    """B random w̄⁽⁰⁾ (He scaling, `sample_network_weights`) drawn on the CPU from `seed`, so the
    same seed gives the same start on every device (the `deep_gd` token format uses it too)."""
    g = torch.Generator().manual_seed(seed)
    w = sample_network_weights(shape, batch_size, generator=g, dtype=torch.float64, scale=scale)
    return w.to(device=like.device, dtype=like.dtype)


def _check_common(depth, width, init_scale, seed):
    V.positive_int("depth", depth)
    V.positive_int("width", width)
    V.number("init_scale", init_scale, low=0)
    V.nonnegative_int("seed", seed)


def _start(alg, problem: Problem) -> torch.Tensor:
    X = problem.X
    shape = alg.shape(problem)
    B = X.shape[0]
    if alg.w0 is None:
        return initial_weights(shape, B, alg.seed, alg.init_scale, X)
    w0 = torch.as_tensor(alg.w0, dtype=X.dtype, device=X.device)
    if w0.shape not in ((shape.n_params,), (B, shape.n_params)):
        raise InputError(
            f"w0 must have shape [D_w]=[{shape.n_params}] or [B, D_w]=[{B}, {shape.n_params}] "
            f"for a depth-{alg.depth}, width-{alg.width} network on d={shape.dim}, "
            f"got {list(w0.shape)}."
        )
    return w0.expand(B, shape.n_params).clone()


@ALGORITHMS.register("relu_network_gd")
@dataclass(frozen=True)
class ReluNetworkGD(Algorithm):
    """w̄_{t+1} = Proj_W(w̄_t − η ∇L_n(w̄_t)) on an N-layer ReLU network (Wu et al. 2025, Thm 1).

    depth: N, weight matrices (default 3, the task's default). width: hidden K (default 20, the
      task's default; take the task's to fit the same architecture).
    step_size: η (default 0.01; the paper gives none).
    radius: of the ball W (default None: no projection). norm: "linf" (default; W a box, which
      the construction's MLP projects onto exactly) or "l2".
    w0: initial w̄, [D_w] or [B, D_w]. Default (None): random, He-scaled by `init_scale`
      (default 1), drawn from `seed` (default 0) per problem (`initial_weights`).
    derivative_ramp: None (default) backpropagates with the exact r′; a width h > 0 uses
      `ramp_derivative(h)` instead — the GD the `deep_gd` construction carries out exactly.
    State: w̄ [B, D_w]; predictions f(w̄_t, x_query).
    """

    depth: int = 3
    width: int = 20
    step_size: float = 0.01
    radius: float | None = None
    norm: str = "linf"
    init_scale: float = 1.0
    seed: int = 0
    w0: torch.Tensor | None = field(default=None, compare=False)
    derivative_ramp: float | None = None
    name = "relu_network_gd"
    family = "relu_network_regression"

    def __post_init__(self):
        _check_common(self.depth, self.width, self.init_scale, self.seed)
        V.number("step_size", self.step_size, low=0, low_open=True)
        if self.radius is not None:
            V.number("radius", self.radius, low=0, low_open=True)
        V.choice("norm", self.norm, NORMS)
        if self.derivative_ramp is not None:
            V.number("derivative_ramp", self.derivative_ramp, low=0, low_open=True)

    def shape(self, problem: Problem) -> NetworkShape:
        return NetworkShape(problem.X.shape[-1], self.depth, self.width)

    def init(self, problem: Problem):
        return _start(self, problem)

    def step(self, problem: Problem, w):
        r = (
            relu_derivative
            if self.derivative_ramp is None
            else ramp_derivative(self.derivative_ramp)
        )
        g = loss_gradient(self.shape(problem), w, problem.X, problem.y, r)
        return project(w - self.step_size * g, self.radius, self.norm)

    def predict(self, problem: Problem, w):
        return network_forward(self.shape(problem), w, problem.X_query)


@ALGORITHMS.register("relu_network_trained")
@dataclass(frozen=True)
class ReluNetworkTrained(Algorithm):
    """The N-layer ReLU network trained directly on the context with Adam (Wu et al. 2025, §5's
    baseline), all problems at once: Adam is per coordinate, so one Adam on the stacked w̄ [B, D_w]
    with the sum of the problems' losses is B independent Adams.

    depth: N (default 3). width: hidden K (default 200, the paper's baseline).
    epochs: default 100; one step of the trajectory = one epoch. batch_size: examples per Adam
      update (default None: the whole context, one update per epoch); mini-batches follow one
      permutation per epoch drawn from `seed`, shared by the problems.
    lr, betas, eps: Adam's (default 0.01, (0.9, 0.999), 1e-8; torch.optim.Adam's update).
    w0, init_scale, seed: the start, as `relu_network_gd`.
    State: (w̄, m, v, t, loss). A Trajectory records the training loss L_n [B] per epoch as the
    iterate (a width-200 network's weights per epoch would not fit in memory); `fit` returns w̄.
    """

    depth: int = 3
    width: int = 200
    epochs: int = 100
    batch_size: int | None = None
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    init_scale: float = 1.0
    seed: int = 0
    w0: torch.Tensor | None = field(default=None, compare=False)
    name = "relu_network_trained"
    family = "relu_network_regression"

    def __post_init__(self):
        _check_common(self.depth, self.width, self.init_scale, self.seed)
        V.positive_int("epochs", self.epochs)
        if self.batch_size is not None:
            V.positive_int("batch_size", self.batch_size)
        V.number("lr", self.lr, low=0, low_open=True)
        V.number("eps", self.eps, low=0)
        if len(self.betas) != 2:
            raise InputError(f"betas must be a pair (beta1, beta2), got {self.betas!r}.")
        for i, b in enumerate(self.betas):
            V.number(f"betas[{i}]", b, low=0, high=1, high_open=True)

    def shape(self, problem: Problem) -> NetworkShape:
        return NetworkShape(problem.X.shape[-1], self.depth, self.width)

    def init(self, problem: Problem):
        w = _start(self, problem)
        loss = training_loss(self.shape(problem), w, problem.X, problem.y)
        return w, torch.zeros_like(w), torch.zeros_like(w), 0, loss

    def _batches(self, n: int, t: int, device) -> list:
        """The examples of each update of the epoch after update t."""
        if self.batch_size is None or self.batch_size >= n:
            return [slice(None)]
        # one permutation per epoch, reproducible from (seed, epoch); the epoch is the number of
        # updates so far divided by the updates per epoch
        per_epoch = -(-n // self.batch_size)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + t // per_epoch)
        perm = torch.randperm(n, generator=g).to(device)
        return [perm[i : i + self.batch_size] for i in range(0, n, self.batch_size)]

    def _epoch_(self, shape, X, y, ws, ms, vs, t: int) -> int:
        """One epoch of Adam updates of the matrices `ws` and their moments, in place; returns
        the number of updates so far."""
        for idx in self._batches(X.shape[1], t, X.device):
            t += 1
            grads = layer_gradients(shape, ws, X[:, idx], y[:, idx])
            adam_(ws, grads, ms, vs, t, self.lr, self.betas, self.eps)
        return t

    def step(self, problem: Problem, state):
        w, m, v, t, _ = state
        shape, X, y = self.shape(problem), problem.X, problem.y
        ws, ms, vs = (_matrices(shape, a) for a in (w, m, v))  # copies: the state is not mutated
        t = self._epoch_(shape, X, y, ws, ms, vs, t)
        w = shape.flatten(ws)
        return w, shape.flatten(ms), shape.flatten(vs), t, training_loss(shape, w, X, y)

    def predict(self, problem: Problem, state):
        return network_forward(self.shape(problem), state[0], problem.X_query)

    def weights(self, state):
        return state[0]

    def iterate(self, state):
        return state[4]

    def run(
        self, problem: Problem | TaskBatch, steps: int | None = None, n_context: int | None = None
    ) -> Trajectory:
        """Train for `steps` epochs (default `epochs`); iterates = training loss per epoch."""
        return super().run(problem, self.epochs if steps is None else steps, n_context)

    def fit(self, problem: Problem | TaskBatch, n_context: int | None = None) -> torch.Tensor:
        """The trained weights w̄ [B, D_w] after `epochs` epochs."""
        if isinstance(problem, TaskBatch):
            problem = problem.split(problem.n_points - 1 if n_context is None else n_context)
        # `step`'s epochs on matrices updated in place, without the per-epoch training loss
        shape = self.shape(problem)
        ws = _matrices(shape, _start(self, problem))
        ms, vs = [torch.zeros_like(W) for W in ws], [torch.zeros_like(W) for W in ws]
        t = 0
        for _ in range(self.epochs):
            t = self._epoch_(shape, problem.X, problem.y, ws, ms, vs, t)
        return shape.flatten(ws)


def _matrices(shape: NetworkShape, w: torch.Tensor) -> list[torch.Tensor]:
    """Contiguous copies of w̄'s matrices [W_1, ..., W_N]."""
    return [W.clone(memory_format=torch.contiguous_format) for W in shape.unflatten(w)]


def adam_(params, grads, exp_avgs, exp_avg_sqs, t: int, lr: float, betas, eps: float) -> None:
    """Adam's update number t (torch.optim.Adam's, no weight decay) of the tensors `params` and
    their moments, in place: torch's fused kernel where the device has one (one pass over memory:
    8× the unfused update on a CPU, where it was most of the baseline's fit), else the same
    update by foreach ops, w ← w − lr·m̂/(√v̂ + ε) with m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ)."""
    b1, b2 = betas
    if params[0].device.type in _fused_devices():
        steps = [torch.tensor(float(t), device=params[0].device)] * len(params)
        hp = dict(lr=lr, beta1=b1, beta2=b2, weight_decay=0.0, eps=eps, amsgrad=False)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, **hp, maximize=False)
        return
    torch._foreach_lerp_(exp_avgs, grads, 1 - b1)
    torch._foreach_mul_(exp_avg_sqs, b2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - b2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, (1 - b2**t) ** 0.5)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, value=-lr / (1 - b1**t))
