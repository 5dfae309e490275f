"""What every construction shares: its metadata, the empty linear-attention transformer it fills,
helpers to write a head's weights by named token coordinates, and how `verify` checks it.

A construction is an ordinary `icsim.models.Transformer` (linear attention, no MLP, no LayerNorm,
no positional embedding, no read-in: the tokens are the hidden state) whose weights are set by
hand. `model.construction` holds its `ConstructionInfo`.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch

from icsim import algorithms
from icsim.errors import InputError
from icsim.models import ModelConfig, Transformer, zeroed
from icsim.registry import Registry

#: every construction: `@CONSTRUCTIONS.register(name, check=CheckClass)` on its build function
CONSTRUCTIONS = Registry("construction", package="icsim.constructions")


@dataclass(frozen=True)
class ConstructionInfo:
    """Size and meaning of a hand-built transformer.

    The prediction after algorithm step t (t = 0..steps) is the read-out of the hidden state
    `hidden[step_block(t)]` = `hidden[block_offset + t * layers_per_step]` (hidden[0] is the
    input tokens). `formulas` gives layers/heads/width as functions of the parameters, as
    documented by the construction.
    """

    name: str
    citation: str
    algorithm: str  # the reference: a registered algorithm, or "newton_schulz"
    hyperparameters: dict
    steps: int
    dim: int
    layers: int
    heads: int
    width: int
    head_dim: int
    layers_per_step: int
    block_offset: int = 0
    formulas: dict = field(default_factory=dict)

    def step_block(self, t: int) -> int:
        """Index into `hidden` [L+1, ...] of the state holding step t's result."""
        return self.block_offset + t * self.layers_per_step

    @property
    def step_blocks(self) -> list[int]:
        return [self.step_block(t) for t in range(self.steps + 1)]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "citation": self.citation,
            "algorithm": self.algorithm,
            "hyperparameters": dict(self.hyperparameters),
            "steps": self.steps,
            "dim": self.dim,
            "layers": self.layers,
            "heads": self.heads,
            "width": self.width,
            "head_dim": self.head_dim,
            "layers_per_step": self.layers_per_step,
            "block_offset": self.block_offset,
            "step_blocks": self.step_blocks,
            "formulas": dict(self.formulas),
        }


def conditioned(X: torch.Tensor, condition_number: float) -> torch.Tensor:
    """X [..., d] with its coordinates scaled 1 .. κ^{-1/2} (geometrically): isotropic inputs
    then have covariance condition κ, as a check's ill-conditioned problems (X's device, dtype)."""
    t = torch.linspace(0, 1, X.shape[-1], dtype=X.dtype, device=X.device)
    return X * condition_number ** (-t / 2)


def rows(start: int, size: int) -> slice:
    """Head coordinates start..start+size−1."""
    return slice(start, start + size)


def put(W: torch.Tensor, out: slice, inp: slice, scale: float = 1.0) -> None:
    """W[out, inp] += scale · I: copy coordinates `inp` into coordinates `out`, scaled."""
    n = out.stop - out.start
    if inp.stop - inp.start != n:
        raise ValueError(f"slices of different lengths: {out} and {inp}")
    idx = torch.arange(n)
    W[out.start + idx, inp.start + idx] += scale


def empty_model(
    *,
    width: int,
    layers: int,
    heads: int,
    head_dim: int,
    n_out: int = 1,
    normalize: bool = False,
    **overrides,
) -> Transformer:
    """A float64 linear-attention transformer with every weight zero (each layer the identity):
    no MLP, LayerNorm, positions or read-in, the tokens being the hidden state; `overrides` are
    further `ModelConfig` fields (e.g. a ReLU MLP).

    Causal masking is off: the token format's mask says who attends to whom. Constructions are
    float64 (exact weights such as η); `.float()` gives the float32 model.
    """
    cfg = {
        "n_dims_in": width,
        "n_dims_out": n_out,
        "n_layer": layers,
        "n_head": heads,
        "n_embd": width,
        "head_dim": head_dim,
        "attention": "linear",
        "normalize_attention": normalize,
        "mlp": False,
        "layer_norm": False,
        "positional": False,
        "read_in": False,
        "bias": False,
        "causal": False,
    }
    return zeroed("transformer", ModelConfig(**{**cfg, **overrides}))


def head_weights(block):
    """Views of one block's attention weights per head: q, k, v [H, hd, E] and proj [E, H, hd].

    Writing into them sets the model's weights (head-major layout of `models.Attention`).
    """
    attn = block.attn
    H, hd = attn.cfg.n_head, attn.cfg.d_head
    E = attn.cfg.n_embd
    return (
        attn.q.weight.data.view(H, hd, E),
        attn.k.weight.data.view(H, hd, E),
        attn.v.weight.data.view(H, hd, E),
        attn.proj.weight.data.view(E, H, hd),
    )


def finish(model: Transformer, info: ConstructionInfo) -> Transformer:
    """Attach the metadata and check the model's shape against it."""
    cfg = model.cfg
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.d_head) == (
        info.layers,
        info.heads,
        info.width,
        info.head_dim,
    ), "construction metadata disagrees with its model"
    model.construction = info
    return model.eval()


class Criterion(NamedTuple):
    """A check's verdict rule: pass when the largest relative error is <= `bound` (and `holds`,
    a further condition the check tested, is not False); `text` states the bound in words."""

    bound: float
    text: str
    holds: bool | None = None


#: relative tolerance of an exact construction: it equals its algorithm up to rounding
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


class Check:
    """How `icsim.constructions.verify` tests one construction (registered with it:
    `@CONSTRUCTIONS.register(name, check=TheCheck)`): draw problems from `task`, run the reference
    algorithm, read the model's result after every step, and judge the relative errors by the
    check's own criterion (exact constructions: `TOLERANCE`; approximate ones override
    `criterion`)."""

    #: the registered task the problems come from; its parameters are `verify`'s task parameters
    task: str | None = None
    #: task parameters the check sets itself from the construction (not the user's to change)
    fixed_task_params: tuple[str, ...] = ("dim",)
    #: construction parameters `verify` adds when the caller gives none (e.g. more queries)
    default_params: dict = {}
    #: verify's defaults for steps, dim and problems per condition number
    defaults: dict = {"steps": 3, "dim": 5, "n_problems": 1000}
    condition_numbers: tuple = (1, 10, 100)

    def task_parameters(self) -> list[str]:
        """The task parameters a user may set (condition_number always)."""
        names = {"condition_number"}
        if self.task is not None:
            from icsim.tasks import TASKS

            names |= set(inspect.signature(TASKS.factory(self.task)).parameters)
        return sorted(names - set(self.fixed_task_params))

    def make_task(self, info, **task_params):
        from icsim.tasks import get as get_task

        return get_task(self.task, dim=info.dim, **task_params)

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        """Random problems in float64 (n_context: context examples, where that applies)."""
        raise NotImplementedError

    def reference(self, info: ConstructionInfo, problems) -> torch.Tensor:
        """The algorithm's result after steps 0..T: [T+1, B, ...] in float64."""
        raise NotImplementedError

    def model_steps(self, model, fmt, problems, dtype: torch.dtype) -> torch.Tensor:
        """The model's result after steps 0..T read from its hidden states: [T+1, B, ...]."""
        raise NotImplementedError

    def criterion(self, run) -> Criterion:
        """The bound on `run.max_error`, the largest relative error over steps, problems and
        condition numbers (`run`: a `verify.Run`)."""
        tol = TOLERANCE[run.dtype] if run.tolerance is None else run.tolerance
        dt = str(run.dtype).removeprefix("torch.")
        return Criterion(tol, f"largest relative error <= {tol:.0e} (exact up to {dt} rounding)")

    @staticmethod
    def draw(task, fmt, n_problems, n_ctx, generator):
        """(batch, n_ctx): `n_problems` float64 prompts of n_ctx context points + the queries."""
        batch = task.sample(
            n_problems, n_ctx + fmt.n_queries, generator=generator, dtype=torch.float64
        )
        return batch, n_ctx

    @staticmethod
    def run_algorithm(info, problems):
        """The trajectory of `info.algorithm` with `info.hyperparameters` on the problems."""
        batch, n_ctx = problems[:2]
        algorithm = algorithms.get(info.algorithm, **info.hyperparameters)
        return algorithm.run(batch, info.steps, n_context=n_ctx)


class RegressionCheck(Check):
    """Linear-regression prompts (`linear_regression` task, x ~ N(0, Σ) with condition number κ)
    against the registered algorithm `info.algorithm` with `info.hyperparameters`.

    Several queries per prompt (default 8) make the relative error of a prompt's predictions a
    norm over queries, so a single near-zero prediction cannot make it meaningless.
    """

    task = "linear_regression"
    default_params = {"n_queries": 8}
    #: rescale each prompt (x and y alike, so w* is unchanged) to ‖X_context‖₂ = 1
    unit_spectral_norm = False

    def sample(self, info, fmt, n_problems, *, generator, n_context=None, **task_params):
        n_ctx = 3 * info.dim if n_context is None else n_context
        batch, _ = self.draw(self.make_task(info, **task_params), fmt, n_problems, n_ctx, generator)
        if self.unit_spectral_norm:
            norm = torch.linalg.matrix_norm(batch.xs[:, :n_ctx], ord=2).clamp(min=1e-300)
            batch = replace(batch, xs=batch.xs / norm[:, None, None], ys=batch.ys / norm[:, None])
        return batch, n_ctx

    def reference(self, info, problems):
        return self.run_algorithm(info, problems).predictions

    def model_steps(self, model, fmt, problems, dtype):
        batch, _ = problems
        batch, model = batch.to(dtype=dtype), in_dtype(model, dtype)
        with torch.no_grad():
            _, hidden = fmt.run(model, batch, return_hidden=True)
            blocks = info_of(model).step_blocks
            return torch.stack([fmt.decode(model.head(hidden[b]), batch.n_points) for b in blocks])


def float_dtype(dtype) -> torch.dtype:
    """torch.float64/float32 from itself or its name ('float64'/'float32'); anything else is a
    user error."""
    names = {"float64": torch.float64, "float32": torch.float32}
    if isinstance(dtype, str) and dtype in names:
        return names[dtype]
    if dtype in (torch.float64, torch.float32):
        return dtype
    raise InputError(f"dtype must be float64 or float32 (or their names), got {dtype!r}.")


def in_dtype(model, dtype):
    """The model in `dtype`: itself if already so, else a converted copy (the caller's is kept)."""
    if next(model.parameters()).dtype == dtype:
        return model
    return copy.deepcopy(model).to(dtype)


def info_of(model) -> ConstructionInfo:
    info = getattr(model, "construction", None)
    if not isinstance(info, ConstructionInfo):
        raise InputError("this model was not built by icsim.constructions.build (no metadata).")
    return info
