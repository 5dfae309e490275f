"""Converting a Garg/Fu-style GPT-2 `state.pt` (written here in their layout, without the
`transformers` package) into an icsim model: same predictions as an independent NumPy forward
of GPT-2 from the raw weights; bad files refused with one clear error."""

import json
import pickle

import numpy as np
import pytest
import torch

from icsim.cli import main
from icsim.errors import InputError
from icsim.models import get_format
from icsim.models.gpt2_import import convert, load_state, write_run
from icsim.tasks.base import TaskBatch

D, E, L, H, POS, INNER = 4, 16, 2, 2, 22, 64  # their n_dims, n_embd, n_layer, n_head, 2·11, 4E


def their_state(seed=0, vocab=7) -> dict:
    """Their TransformerModel's state dict: keys and shapes of Hugging Face's GPT2Model (Conv1D
    weights [in, out]) inside _read_in / _read_out, with the mask buffers older releases save."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.3):
        return torch.randn(*shape, generator=g) * s

    st = {
        "_read_in.weight": r(E, D), "_read_in.bias": r(E),
        "_backbone.wte.weight": r(vocab, E), "_backbone.wpe.weight": r(POS, E),
        "_backbone.ln_f.weight": 1 + r(E), "_backbone.ln_f.bias": r(E),
        "_read_out.weight": r(1, E), "_read_out.bias": r(1),
    }  # fmt: skip
    for i in range(L):
        p = f"_backbone.h.{i}."
        st.update({
            p + "ln_1.weight": 1 + r(E), p + "ln_1.bias": r(E),
            p + "attn.bias": torch.ones(1, 1, POS, POS, dtype=torch.bool).tril(),
            p + "attn.masked_bias": torch.tensor(-1e4),
            p + "attn.c_attn.weight": r(E, 3 * E), p + "attn.c_attn.bias": r(3 * E),
            p + "attn.c_proj.weight": r(E, E), p + "attn.c_proj.bias": r(E),
            p + "ln_2.weight": 1 + r(E), p + "ln_2.bias": r(E),
            p + "mlp.c_fc.weight": r(E, INNER), p + "mlp.c_fc.bias": r(INNER),
            p + "mlp.c_proj.weight": r(INNER, E), p + "mlp.c_proj.bias": r(E),
        })  # fmt: skip
    return st


def reference_forward(st: dict, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """GPT-2 in float64 NumPy from their raw weights on their tokens (x, [y, 0, …]) -> [B, n]."""
    w = {k: v.double().numpy() for k, v in st.items()}
    B, n, _ = xs.shape
    z = np.zeros((B, n, 2, D))
    z[:, :, 0], z[:, :, 1, 0] = xs, ys
    h = z.reshape(B, 2 * n, D) @ w["_read_in.weight"].T + w["_read_in.bias"]
    T = h.shape[1]
    h = h + w["_backbone.wpe.weight"][:T]

    def ln(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * w[p + ".weight"] + w[p + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    causal = np.tril(np.ones((T, T), bool))
    for i in range(L):
        p = f"_backbone.h.{i}."
        qkv = ln(h, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (a.reshape(B, T, H, E // H).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, -1))
        s = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(E // H), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a = (a / a.sum(-1, keepdims=True)) @ v
        a = a.transpose(0, 2, 1, 3).reshape(B, T, E)
        h = h + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = gelu_new(ln(h, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        h = h + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    out = ln(h, "_backbone.ln_f") @ w["_read_out.weight"].T + w["_read_out.bias"]
    return out[:, ::2, 0]  # read out at the x tokens


def prompts(n=11, B=8, seed=1):
    g = np.random.default_rng(seed)
    return g.standard_normal((B, n, D)), g.standard_normal((B, n))


def test_converted_model_equals_the_reference_gpt2_forward():
    st = their_state()
    model = convert(st, n_head=H)
    assert model.cfg.activation == "gelu_tanh" and model.cfg.max_positions == POS
    xs, ys = prompts()
    batch = TaskBatch(*(torch.tensor(a, dtype=torch.float32) for a in (xs, ys)), "x")
    with torch.no_grad():
        got = get_format("interleaved", dim=D).run(model, batch).numpy()
    np.testing.assert_allclose(got, reference_forward(st, xs, ys), atol=1e-5, rtol=0)
    # the test can fail: the exact GELU (icsim's default) differs from gpt2's gelu_new
    model.blocks[0].mlp.act = torch.nn.GELU()
    with torch.no_grad():
        other = get_format("interleaved", dim=D).run(model, batch).numpy()
    assert np.abs(other - got).max() > 1e-5


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda s: s.pop("_backbone.h.1.mlp.c_fc.bias"), "has no '_backbone.h.1.mlp.c_fc.bias'"),
        (lambda s: s.update({"_backbone.h.0.attn.c_proj.weight": torch.zeros(E, E + 1)}),
         "has shape (16, 17), expected (16, 16)"),
        (lambda s: s.update({"_backbone.h.0.attn.extra": torch.zeros(2)}), "unexpected weights"),
        (lambda s: s.pop("_read_out.weight"), "has no '_read_out.weight'"),
    ],
)  # fmt: skip
def test_missing_or_misshaped_keys_are_refused(edit, needle):
    st = their_state()
    edit(st)
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        convert(st, n_head=H)
    with pytest.raises(InputError, match="does not divide"):
        convert(their_state(), n_head=3)


class NotATensor:  # a pickled object other than tensors: what weights_only=True refuses
    pass


def test_state_pt_to_run_dir_then_eval_and_bad_files(tmp_path, capsys):
    st = their_state()
    path = tmp_path / "state.pt"
    torch.save({"model_state_dict": st, "optimizer_state_dict": {}, "train_step": 7}, path)
    assert load_state(path)[1] == 7
    run = write_run(path, tmp_path / "run", n_head=H, n_points=11)
    from icsim.training import load_trained

    model, fmt, cfg = load_trained(run)
    xs, ys = prompts(seed=2)
    batch = TaskBatch(*(torch.tensor(a, dtype=torch.float32) for a in (xs, ys)), "x")
    with torch.no_grad():
        got = fmt.run(model, batch).numpy()
    np.testing.assert_allclose(got, reference_forward(st, xs, ys), atol=1e-5, rtol=0)
    assert cfg.dim == D and cfg.n_points == 11 and cfg.task == "linear_regression"
    assert json.loads((run / "config.json").read_text())["converted_from"]["file"] == str(path)
    # the CLI: convert, then icsim eval reads the run
    assert main(["convert", "gpt2-state", str(path), "--out", str(tmp_path / "cli"),
                 "--n-head", str(H), "--n-points", "11"]) == 0  # fmt: skip
    assert main(["eval", str(tmp_path / "cli"), "--prompts", "8"]) == 0
    capsys.readouterr()
    # a file with other pickled objects, a missing --n-head: one line, exit 2
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"model_state_dict": NotATensor()}))
    for argv, needle in [
        (["convert", "gpt2-state", str(bad), "--out", str(tmp_path / "x"), "--n-head", "2"],
         "weights_only=True"),
        (["convert", "gpt2-state", str(path), "--out", str(tmp_path / "y")], "--n-head"),
        (["train", "--resume", str(tmp_path / "cli")], "cannot be resumed"),  # weights only
    ]:  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_their_config_yaml_supplies_heads_points_and_task(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "state.pt"
    torch.save({"model_state_dict": their_state()}, path)
    conf = "model: {{n_head: {h}}}\ntraining: {{task: {t}, curriculum: {{points: {{end: 9}}}}}}\n"
    (tmp_path / "config.yaml").write_text(conf.format(h=H, t="sparse_linear_regression"))
    from icsim.training import load_trained

    _, _, cfg = load_trained(write_run(path, tmp_path / "run"))
    assert (cfg.n_head, cfg.n_points, cfg.task) == (H, 9, "sparse_linear_regression")
    (tmp_path / "config.yaml").write_text(conf.format(h=H, t="decision_tree"))
    with pytest.raises(InputError, match="'decision_tree'.*pass --task"):
        write_run(path, tmp_path / "run2")
    write_run(path, tmp_path / "run2", task="linear_regression")  # the flag decides
