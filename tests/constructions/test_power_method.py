"""The power-method construction against the power_method algorithm (float64)."""

import pytest
import torch

import icsim.constructions
from icsim.constructions import verify as V
from icsim.constructions.power_method import normalisation_bound, width_table
from icsim.errors import InputError

SMALL = {"steps": 3, "dim": 3, "n_problems": 48, "pieces": 64}


def test_verify_passes_with_exact_products_and_vector_one():
    r = V.verify("power_method", **SMALL)
    assert r.passed, r.summary()
    info = r.info
    assert info.layers == 1 + 2 * (2 * 3 + 3) and info.heads == 5 and info.head_dim == 3
    assert info.steps == 6 and info.step_blocks == [0, 4, 6, 8, 13, 15, 17]
    assert max(r.per_step[:4]) <= 1e-12  # vector 1: the algorithm's directions up to rounding
    assert "vector 1 exact" in r.criterion
    one = V.verify("power_method", k=1, **SMALL)
    assert one.passed and one.max_error <= 1e-12 and one.bound == 1e-10


@pytest.mark.parametrize("where", ["interpolant", "covariance", "deflation"])
def test_breaking_one_weight_fails_verification(where):
    model, fmt = icsim.constructions.build("power_method", dim=3, steps=3, pieces=64)
    block = {"interpolant": 2, "covariance": 0, "deflation": 10}[where]
    w = model.blocks[block].mlp.proj.weight if where == "interpolant" else None
    w = model.blocks[block].attn.v.weight if w is None else w
    with torch.no_grad():
        w.data.view(-1)[w.data.abs().flatten().argmax()] *= 1.01
    bad = V.verify_model(model, fmt, n_problems=48)
    assert not bad.passed, bad.summary()


def test_error_falls_with_the_number_of_relu_pieces():
    t = width_table(pieces=(64, 128, 256), dim=3, steps=3, n_problems=24)
    assert all(e <= b for e, b in zip(t["norm_error"], t["bound"]))
    assert max(t["first_vector_error"]) <= 1e-12
    later = t["later_vector_error"]
    assert later[2] * 2.5 < later[1] and later[1] * 2.5 < later[0]  # O(W⁻²)
    assert normalisation_bound(256) == pytest.approx(t["bound"][2])


@pytest.mark.parametrize(
    "params", [{"k": 4}, {"pieces": 1}, {"norm_range": (1.0, 0.5)}, {"norm_range": (0, 1)}]
)
def test_bad_input(params):
    with pytest.raises(InputError):
        icsim.constructions.build("power_method", dim=3, **params)
