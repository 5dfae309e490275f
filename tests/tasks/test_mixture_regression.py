"""mixture_linear_regression: both mixing modes, the truth the batch keeps, and bad input."""

import math

import pytest
import torch

import icsim.tasks
from icsim.errors import InputError


def sample(B=256, n=40, seed=0, **params):
    task = icsim.tasks.get("mixture_linear_regression", **params)
    g = torch.Generator().manual_seed(seed)
    return task.sample(B, n, generator=g, dtype=torch.float64)


def test_per_sample_symmetric_default_norm_labels_and_noise():
    b = sample(dim=4, snr=3.0, noise_std=0.5)
    comp = b.components
    assert comp.shape == (256, 2, 4)
    torch.testing.assert_close(comp[:, 1], -comp[:, 0])
    torch.testing.assert_close(comp.norm(dim=-1), torch.full((256, 2), 1.5, dtype=torch.float64))
    torch.testing.assert_close(b.snr, torch.full((256,), 3.0, dtype=torch.float64))
    # every pair draws its own label (π = ½), and the residual of its own component is noise
    assert 0.45 < b.labels.double().mean() < 0.55
    assert (b.labels != b.labels[:, :1]).any(1).float().mean() > 0.9
    coef = comp[torch.arange(256)[:, None], b.labels]
    resid = b.ys - (b.xs * coef).sum(-1)
    assert abs(resid.std().item() - 0.5) < 0.02
    torch.testing.assert_close(b.w_star, comp[:, 0])
    # fresh components per prompt: directions differ
    assert (comp[0, 0] - comp[1, 0]).abs().max() > 0.1


def test_per_prompt_fixed_set_one_label_per_prompt_and_device_free_components():
    b = sample(dim=3, n_components=5, mixing="per_prompt", noise_std=0.0, n=10)
    assert (b.labels == b.labels[:, :1]).all()
    assert len(torch.unique(b.components, dim=0)) == 1  # one fixed set, shared by every prompt
    torch.testing.assert_close(b.ys, torch.einsum("bnd,bd->bn", b.xs, b.w_star))
    assert math.isinf(b.snr[0].item())
    counts = torch.bincount(b.labels[:, 0], minlength=5).double() / 256
    assert (counts > 0.1).all()
    # the fixed set does not depend on the batch's generator
    other = sample(dim=3, n_components=5, mixing="per_prompt", noise_std=0.0, n=10, seed=7)
    torch.testing.assert_close(other.components[0], b.components[0])


def test_weights_and_fixed_components_per_sample():
    b = sample(dim=3, n_components=3, weights=(0.7, 0.2, 0.1), components="fixed", n=200)
    freq = torch.bincount(b.labels.reshape(-1), minlength=3).double() / b.labels.numel()
    torch.testing.assert_close(
        freq, torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64), atol=0.01, rtol=0
    )
    assert not torch.allclose(b.components[:, 1], -b.components[:, 0])  # K = 3: not symmetric


def test_same_seed_same_batch_and_rows_slices_truth():
    a, b = sample(B=8, n=5), sample(B=8, n=5)
    torch.testing.assert_close(a.ys, b.ys)
    r = a.rows(2, 4)
    assert r.labels.shape == (2, 5) and r.components.shape == (2, 2, 5)


@pytest.mark.parametrize(
    "params",
    [
        {"n_components": 0},
        {"weights": (0.5, 0.4)},
        {"weights": (0.5, 0.5, 0.0)},
        {"weights": (1.2, -0.2)},
        {"snr": -1.0},
        {"noise_std": 0.0},  # per sample: ‖β‖ = snr·σ undefined
        {"n_components": 3, "symmetric": True},
        {"mixing": "per_token"},
        {"components": "shared"},
    ],
)
def test_bad_parameters_are_input_errors(params):
    with pytest.raises(InputError):
        icsim.tasks.get("mixture_linear_regression", **params)


def test_bad_prompt_length_is_input_error():
    task = icsim.tasks.get("mixture_linear_regression")
    with pytest.raises(InputError, match="n_points"):
        task.sample(4, 0)
