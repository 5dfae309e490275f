"""Bad model configurations and inputs raise one clear InputError."""

import pytest
import torch

from icsim.errors import InputError
from icsim.models import LSTM, LoopedTransformer, ModelConfig, Stacked, Transformer, build

BAD_CONFIGS = [
    (dict(n_embd=10, n_head=3), "not divisible by n_head"),
    (dict(attention="cosine"), "attention must be one of"),
    (dict(activation="tanh"), "activation must be one of"),
    (dict(n_layer=0), "n_layer must be a positive integer"),
    (dict(n_head=-1), "n_head must be a positive integer"),
    (dict(n_embd=2.5), "n_embd must be a positive integer"),
    (dict(n_layer=True), "n_layer must be a positive integer"),
    (dict(dropout=1.0), "dropout must be < 1"),
    (dict(dropout=-0.1), "dropout must be >= 0"),
    (dict(read_in=False, n_dims_in=5, n_embd=8), "read_in=False needs n_dims_in == n_embd"),
]


@pytest.mark.parametrize("params,message", BAD_CONFIGS)
def test_bad_config_raises_input_error(params, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**params)


def test_head_dim_lifts_the_divisibility_requirement():
    cfg = ModelConfig(n_embd=10, n_head=3, head_dim=4)
    assert cfg.d_head == 4


def test_build_rejects_unknown_config_keys_and_models():
    with pytest.raises(InputError, match="no parameter 'n_layers'"):
        build("transformer", {"n_layers": 2})
    with pytest.raises(InputError, match="unknown model 'tranformer'"):
        build("tranformer", {})
    model = build("looped", {"n_dims_in": 4, "n_layer": 2, "n_head": 1, "n_embd": 8})
    assert isinstance(model, LoopedTransformer)


@pytest.mark.parametrize("cls", [Transformer, LoopedTransformer, LSTM])
def test_token_width_mismatch_raises_input_error(cls):
    model = cls(ModelConfig(n_dims_in=4, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(InputError, match="tokens have width 5 but the model expects n_dims_in=4"):
        model(torch.zeros(2, 3, 5))


def test_too_long_sequence_raises_input_error():
    model = Transformer(ModelConfig(n_dims_in=4, n_layer=1, n_head=1, n_embd=8, max_positions=4))
    with pytest.raises(InputError, match="exceeds max_positions=4"):
        model(torch.zeros(1, 5, 4))


def test_lstm_refuses_an_attention_mask():
    model = LSTM(ModelConfig(n_dims_in=4, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(InputError, match="takes no attention mask"):
        model(torch.zeros(1, 3, 4), mask=torch.ones(3, 3, dtype=torch.bool))


def test_looped_model_rejects_a_bad_loop_count():
    model = LoopedTransformer(ModelConfig(n_dims_in=4, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(InputError, match="n_loops must be a positive integer"):
        model(torch.zeros(1, 3, 4), n_loops=0)


def test_stacked_format_needs_context():
    with pytest.raises(InputError, match="leaves no context"):
        Stacked(3, n_queries=2).mask(2)
