"""model_prefix_predictions: asking for some prefixes, or in chunks of prompts, gives exactly the
columns of the one-call answer (wu2025 asks for the last prefix only off distribution)."""

import pytest
import torch

import icsim
from icsim.analysis.evaluation import model_prefix_predictions
from icsim.models import Interleaved, ModelConfig, Stacked, Transformer


@pytest.mark.parametrize("fmt", [Interleaved(3), Stacked(3)], ids=["interleaved", "stacked"])
def test_some_prefixes_and_chunks_are_the_columns_of_all(fmt):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_dims_in=fmt.width, n_layer=2, n_head=2, n_embd=16))
    g = torch.Generator().manual_seed(1)
    batch = icsim.tasks.get("linear_regression", dim=3).sample(5, 6, generator=g)
    every = model_prefix_predictions(model, fmt, batch)
    assert every.shape == (5, 6)
    ks = [0, 2, 5]
    assert torch.equal(model_prefix_predictions(model, fmt, batch, ks=ks), every[:, ks])
    # other batch shapes may round differently in the last bits
    torch.testing.assert_close(model_prefix_predictions(model, fmt, batch, chunk=2), every)
    some = model_prefix_predictions(model, fmt, batch, chunk=2, ks=[5])
    torch.testing.assert_close(some, every[:, [5]])
