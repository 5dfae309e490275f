"""Core task types: a TaskBatch of prompts and the Task interface every family implements."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.registry import Registry

#: every task family, by name: `@TASKS.register(name)` in the family's own module
TASKS = Registry("task", package="icsim.tasks")


@dataclass
class TaskBatch:
    """B prompts of n points: `xs` [B, n, d], `ys` [B, n] (or [B, n, k]), plus the ground truth.

    `truth` holds whatever the sampler drew (`w_star`, `Sigma`, ...); its entries are also
    reachable as attributes (`batch.w_star`).
    """

    xs: torch.Tensor
    ys: torch.Tensor
    task: str
    truth: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getattr__(self, name):
        truth = self.__dict__.get("truth", {})
        if name in truth:
            return truth[name]
        raise AttributeError(f"TaskBatch of task {self.__dict__.get('task')!r} has no {name!r}")

    @property
    def batch_size(self) -> int:
        return self.xs.shape[0]

    @property
    def n_points(self) -> int:
        return self.xs.shape[1]

    @property
    def dim(self) -> int:
        return self.xs.shape[2]

    def to(self, device=None, dtype=None) -> TaskBatch:
        def mv(t):
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

        return replace(
            self, xs=mv(self.xs), ys=mv(self.ys), truth={k: mv(v) for k, v in self.truth.items()}
        )

    def rows(self, start: int, stop: int) -> TaskBatch:
        """Prompts start..stop−1 (per-prompt truth entries, those with B rows, sliced too)."""
        B = self.batch_size
        truth = {
            k: v[start:stop] if v.dim() and v.shape[0] == B else v for k, v in self.truth.items()
        }
        return replace(self, xs=self.xs[start:stop], ys=self.ys[start:stop], truth=truth)

    def prefix(self, n: int) -> TaskBatch:
        """The first n points of every prompt."""
        return replace(self, xs=self.xs[:, :n], ys=self.ys[:, :n])

    def split(self, n_context: int) -> Problem:
        """Context = the first n_context points; queries = the rest."""
        if not 0 <= n_context < self.n_points:
            raise InputError(
                f"n_context must be in [0, {self.n_points - 1}] for prompts of "
                f"{self.n_points} points, got {n_context!r}."
            )
        return Problem(
            X=self.xs[:, :n_context],
            y=self.ys[:, :n_context],
            X_query=self.xs[:, n_context:],
            y_query=self.ys[:, n_context:],
        )


@dataclass
class Problem:
    """An in-context problem as the algorithms see it: context (X [B,n,d], y [B,n]) and queries."""

    X: torch.Tensor
    y: torch.Tensor
    X_query: torch.Tensor
    y_query: torch.Tensor | None = None


class Task:
    """A family of in-context problems. Subclasses set `name` and implement `_sample`."""

    name: str = "task"
    dim: int

    def sample(
        self,
        batch_size: int,
        n_points: int,
        *,
        generator: torch.Generator | None = None,
        device="cpu",
        dtype=torch.float32,
        active_dims: int | None = None,
    ) -> TaskBatch:
        """Draw `batch_size` prompts of `n_points` points on `device`, every draw from `generator`.

        `active_dims` (curriculum, Garg et al. 2022): only the first `active_dims` coordinates of
        x are non-zero.

        What a seed reproduces: the same generator state gives the same prompts only for the same
        device type, dtype and torch version. A CUDA generator is a different random stream from
        a CPU one (so `--device cuda` draws other prompts than the CPU), and float32 and float64
        draws consume the stream differently (beyond a handful of numbers they are different
        prompts, not a rounded copy). Reproductions record the generator's device and the prompt
        dtype in config.json (`sampling`).
        """
        V.positive_int("batch_size", batch_size)
        V.positive_int("n_points", n_points)
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}.")
        if active_dims is not None:
            V.positive_int("active_dims", active_dims)
            if active_dims > self.dim:
                raise InputError(f"active_dims must be <= dim={self.dim}, got {active_dims}.")
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise InputError(
                f"generator is on {generator.device} but sampling was asked on {device}: "
                f"create it with torch.Generator(device={str(device)!r})."
            )
        return self._sample(batch_size, n_points, generator, device, dtype, active_dims)

    def _sample(self, batch_size, n_points, generator, device, dtype, active_dims) -> TaskBatch:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def haar_orthogonal(batch: int, dim: int, generator, device, dtype) -> torch.Tensor:
    """B Haar-random orthogonal matrices (QR of a Gaussian with the sign of R's diagonal fixed)."""
    g = torch.randn(batch, dim, dim, generator=generator, device=device, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.to(dtype)
