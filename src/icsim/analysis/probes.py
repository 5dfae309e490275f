"""Per-layer predictions: a linear read-out on every layer's hidden state (Fu et al. 2024 §4).

Fu et al. re-train a read-out per layer by SGD; a closed-form ridge fit on cached hidden states
of a frozen model gives the same linear probe in seconds (PAPERS.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from icsim.tasks.base import Task, TaskBatch


@torch.no_grad()
def hidden_at_predictions(model, fmt, batch: TaskBatch) -> torch.Tensor:
    """Hidden states at the prediction positions: [L+1, B, m, n_embd]."""
    model.eval()
    tokens = fmt.encode(batch)
    _, hidden = model(tokens, mask=fmt.mask(batch.n_points, tokens.device), return_hidden=True)
    return hidden[:, :, fmt.positions(batch.n_points).to(tokens.device)]


@torch.no_grad()
def readout_predictions(model, fmt, batch: TaskBatch) -> torch.Tensor:
    """The model's own read-out (final LayerNorm + read_out) applied to every layer's state:
    [L+1, B, m]. Exact for hand-built constructions, whose every block ends in a readable state."""
    h = hidden_at_predictions(model, fmt, batch)
    return model.head(h)[..., 0]


@dataclass
class LayerProbes:
    """One affine read-out per layer: weight [L+1, E], bias [L+1]."""

    weight: torch.Tensor
    bias: torch.Tensor

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [L+1, B, m, E] -> predictions [L+1, B, m]."""
        w, b = self.weight.to(hidden.dtype), self.bias.to(hidden.dtype)
        return torch.einsum("lbme,le->lbm", hidden, w) + b[:, None, None]


def fit_probes(
    model,
    fmt,
    task: Task,
    *,
    n_prompts: int = 2048,
    n_points: int,
    generator,
    ridge: float = 1e-4,
    device="cpu",
    chunk: int = 512,
    target=None,
) -> LayerProbes:
    """Fit a ridge read-out per layer on fresh prompts (float64 normal equations). `target`
    (batch -> [B, m]) replaces the format's labels, e.g. by noiseless ones."""
    E = None
    gram = rhs = None
    sy = None
    count = 0
    for start in range(0, n_prompts, chunk):
        batch = task.sample(
            min(chunk, n_prompts - start), n_points, generator=generator, device=device
        )
        h = hidden_at_predictions(model, fmt, batch).double()  # [L+1, B, m, E]
        y = (fmt.targets(batch) if target is None else target(batch)).double()
        L1, _, _, E = h.shape
        feats = torch.cat([h.reshape(L1, -1, E), h.new_ones(L1, h[0].numel() // E, 1)], -1)
        yy = y.reshape(-1)
        g = feats.transpose(1, 2) @ feats
        r = feats.transpose(1, 2) @ yy
        gram, rhs = (g, r) if gram is None else (gram + g, rhs + r)
        sy = yy.square().sum() if sy is None else sy + yy.square().sum()
        count += yy.numel()
    reg = ridge * count * torch.eye(E + 1, dtype=gram.dtype, device=gram.device)
    reg[-1, -1] = 0  # do not shrink the bias
    # Cholesky (the matrix is SPD): batched LU in MKL fails after torch.set_num_threads(2) here
    sol = torch.cholesky_solve(rhs.unsqueeze(-1), torch.linalg.cholesky(gram + reg)).squeeze(-1)
    return LayerProbes(weight=sol[:, :E].float(), bias=sol[:, E].float())


@torch.no_grad()
def layer_predictions(model, fmt, batch: TaskBatch, probes: LayerProbes | None = None):
    """[L+1, B, m]: each layer's prediction for every query, through `probes` (trained models)
    or, without probes, through the model's own read-out (constructions)."""
    if probes is None:
        return readout_predictions(model, fmt, batch)
    return probes.predict(hidden_at_predictions(model, fmt, batch))


def model_sensitivity(model, fmt, batch: TaskBatch):
    """(ŷ, ∂ŷ/∂x_query) of a model on every task of `batch` (von Oswald et al. 2023): one
    autograd pass, since the tasks do not interact and the gradient of the sum is each task's."""
    xs = batch.xs.detach().clone().requires_grad_(True)
    pred = fmt.run(model, replace(batch, xs=xs))[:, 0]
    (grad,) = torch.autograd.grad(pred.sum(), xs)
    return pred.detach(), grad[:, -1]
