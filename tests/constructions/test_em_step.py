"""em_step: softmax attention carries out soft EM exactly; Lloyd is its σ → 0 limit."""

import pytest
import torch

import icsim.algorithms as A
import icsim.tasks
from icsim.algorithms.clustering import clustering_problem
from icsim.cli import main
from icsim.constructions import build
from icsim.constructions import verify as V


def test_matches_em_to_1e_10_in_float64_with_anisotropic_clusters():
    r = V.verify("em_step", steps=3, dim=3, n_problems=150, condition_numbers=(1, 10))
    assert r.passed and r.max_error <= 1e-10, r.summary()
    assert len(r.per_step) == 4 and r.info.step_blocks == [2, 6, 10, 14]


def test_weights_sigma_and_prompts_of_varying_length():
    """Padding is never a key; unequal π enter through the key bias σ² log π_k."""
    model, fmt = build("em_step", dim=2, steps=2, n_clusters=3, sigma=0.7, weights=(0.2, 0.3, 0.5))
    task = icsim.tasks.get("gmm_clustering", dim=2, n_clusters=3, sigma=0.7, min_points=5)
    b = task.sample(100, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c0 = b.mu + 0.3
    with torch.no_grad():
        gamma = fmt.run(model, b, c0) * b.mask[..., None]
    pi = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64).expand(100, 3)
    p = clustering_problem(b, centres0=c0)._replace(weights=pi)
    em = A.get("soft_em", initialization="given", sigma=0.7)
    ref = em.run(p, 2).responsibilities[-1]
    torch.testing.assert_close(gamma, ref, atol=1e-12, rtol=0)


def test_lloyd_is_the_zero_temperature_limit_with_the_stated_error():
    task = icsim.tasks.get("gmm_clustering", dim=2, n_clusters=3, sigma=1.0, separation=6.0)
    b = task.sample(200, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c0 = b.mu + 0.5
    lloyd = A.get("lloyd", initialization="given").run(clustering_problem(b, centres0=c0), 1)
    errors = {}
    for sigma in (2.0, 0.05):
        model, fmt = build("em_step", dim=2, steps=1, n_clusters=3, sigma=sigma)
        with torch.no_grad():
            _, h = fmt.run(model, b, c0, return_hidden=True)
        mu = fmt.centres(h[model.construction.step_block(1)], 20)
        errors[sigma] = (mu - lloyd.iterates[1]).abs().amax((1, 2))
    d2 = (b.xs[:, :, None] - c0[:, None]).square().sum(-1).sort(-1).values
    gap = (d2[..., 1] - d2[..., 0]).amin(1)  # the smallest margin of each prompt
    bound = 2 * torch.exp(-gap / (2 * 0.05**2)) * b.xs.abs().amax((1, 2)) * 20
    # + float64 rounding of scores of size ‖x‖‖μ‖/σ² (~1e5 here): ε·1e5·n·max|x| ~ 1e-8
    assert (errors[0.05] <= bound + 1e-8).all()
    assert errors[2.0].median() > 1e-3 and errors[0.05].median() < 1e-10


def test_a_perturbed_weight_fails_verification():
    model, fmt = build("em_step", dim=2, steps=2, n_clusters=3)
    with torch.no_grad():
        w = model.layers[2].q.weight.view(-1)  # the M-step's query: its temperature
        w[w.abs().argmax()] *= 1.001
    r = V.verify_model(model, fmt, n_problems=50, condition_numbers=(1,))
    assert not r.passed and r.max_error > 1e-6


def test_cli_construct_verify(capsys):
    code = main(["construct", "em_step", "--verify", "--problems", "30", "--steps", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "PASS" in out


@pytest.mark.parametrize(
    "params", [{"n_clusters": 1}, {"sigma": 0.0}, {"weights": (0.5, 0.6, 0.1)}]
)
def test_bad_parameters(params):
    with pytest.raises(icsim.InputError):
        build("em_step", **params)
