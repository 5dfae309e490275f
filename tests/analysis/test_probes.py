"""`fit_probes(target=...)`: per-layer ridge read-outs fitted to targets other than the format's
labels (liu2025 fits the noiseless x_qᵀβ*), against a float64 NumPy ridge on the same states."""

import numpy as np
import torch

import icsim
from icsim.analysis.probes import fit_probes, hidden_at_predictions
from icsim.models import ModelConfig, Stacked, Transformer


def test_fit_probes_with_a_target_is_the_ridge_fit_to_that_target():
    task = icsim.tasks.get("sparse_recovery", dim=4, sparsity=2, noise_std=0.5)
    fmt = Stacked(dim=4, n_queries=3)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_dims_in=fmt.width, n_layer=2, n_head=2, n_embd=8))
    model.eval()

    def noiseless(batch):
        return torch.einsum("bqd,bd->bq", batch.xs[:, -3:], batch.beta_star)

    ridge = 1e-3

    def fit(**target):  # the same prompts (seed 1) for both fits
        return fit_probes(
            model, fmt, task, n_prompts=64, n_points=9,
            generator=torch.Generator().manual_seed(1), ridge=ridge, **target,
        )  # fmt: skip

    probes = fit(target=noiseless)
    batch = task.sample(64, 9, generator=torch.Generator().manual_seed(1))
    h = hidden_at_predictions(model, fmt, batch).double().numpy()  # [L+1, B, Q, E]
    y = noiseless(batch).double().numpy().reshape(-1)
    for layer in range(h.shape[0]):
        F = np.concatenate([h[layer].reshape(-1, h.shape[-1]), np.ones((y.size, 1))], 1)
        reg = ridge * y.size * np.eye(F.shape[1])
        reg[-1, -1] = 0  # the bias is not shrunk
        sol = np.linalg.solve(F.T @ F + reg, F.T @ y)
        np.testing.assert_allclose(
            probes.weight[layer].double().numpy(), sol[:-1], rtol=1e-4, atol=1e-6
        )
        assert abs(probes.bias[layer].item() - sol[-1]) < 1e-5
    # the noisy labels (the default) give another fit
    default = fit()
    assert not torch.allclose(default.weight, probes.weight)
