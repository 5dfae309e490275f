"""Garg et al. 2022's (and Fu et al. 2024's) trained GPT-2 checkpoints as icsim runs.

Their `state.pt` ({"model_state_dict": ..., "optimizer_state_dict": ..., "train_step": ...}) or
`model_STEP.pt` holds the state dict of their `TransformerModel` (github.com/dtsip/
in-context-learning, src/models.py): `_read_in` Linear(d → n_embd), `_backbone` a Hugging Face
GPT2Model (pre-LN blocks, learned positions, GELU with the tanh approximation `gelu_new`,
LayerNorm eps 1e-5, biases; Conv1D weights stored [in, out]; `wte` unused), `_read_out`
Linear(n_embd → 1). Their tokens are x and [y, 0, …, 0] interleaved; icsim's interleaved format
is [x; 0] and [0; y] (width d + 1), so our read-in's y column is their first column: the same
function, exactly. The file is read with `torch.load(weights_only=True)` only (no arbitrary
unpickling), and every key and shape is checked before anything is written.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.models.transformer import ModelConfig, Transformer

#: buffers older `transformers` releases save in every block (the causal mask): not weights
BUFFERS = ("attn.bias", "attn.masked_bias")
KEYS = ("model", "training")  # the sections of their config.yaml read here
LAYER = re.compile(r"_backbone\.h\.(\d+)\.")


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """(the model state dict, its training step or 0) of a Garg-style `.pt` file, read with
    `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} is not a file; give the path of their state.pt or model_STEP.pt.")
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol: not the user's
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal of the safe loader is the file's fault
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(
            f"{path} cannot be read with torch.load(weights_only=True) ({first}); icsim loads "
            "only tensors and plain containers, never arbitrary pickled objects: re-save the "
            "state dict alone (torch.save(model.state_dict(), path)) from a trusted environment."
        ) from None
    state = obj.get("model_state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(
            f"{path} holds no state dict of tensors (expected their TransformerModel's "
            "model_state_dict, alone or in a dict under 'model_state_dict')."
        )
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    step = obj.get("train_step", 0) if isinstance(obj, dict) else 0
    return state, step if isinstance(step, int) and step >= 0 else 0


def _shape(state: dict, key: str) -> tuple:
    if key not in state:
        raise InputError(
            f"the state dict has no {key!r}: it is not a Garg/Fu-style GPT-2 TransformerModel "
            "(_read_in, _backbone = Hugging Face GPT2Model, _read_out)."
        )
    return tuple(state[key].shape)


def expected_shapes(state: dict) -> dict[str, tuple]:
    """Every weight their model of this size has, with its shape (sizes read off the read-in,
    the positions and the first MLP; the number of layers off the keys)."""
    n_embd, n_dims = _shape(state, "_read_in.weight")
    n_pos = _shape(state, "_backbone.wpe.weight")[0]
    layers = sorted({int(m.group(1)) for k in state if (m := LAYER.match(k))})
    if not layers:
        raise InputError("the state dict has no GPT-2 blocks (_backbone.h.0...).")
    n_inner = _shape(state, "_backbone.h.0.mlp.c_fc.weight")[-1]
    E = n_embd
    out = {
        "_read_in.weight": (E, n_dims), "_read_in.bias": (E,),
        "_backbone.wpe.weight": (n_pos, E),
        "_backbone.ln_f.weight": (E,), "_backbone.ln_f.bias": (E,),
        "_read_out.weight": (1, E), "_read_out.bias": (1,),
    }  # fmt: skip
    for i in range(max(layers) + 1):
        p = f"_backbone.h.{i}."
        out.update({
            p + "ln_1.weight": (E,), p + "ln_1.bias": (E,),
            p + "attn.c_attn.weight": (E, 3 * E), p + "attn.c_attn.bias": (3 * E,),
            p + "attn.c_proj.weight": (E, E), p + "attn.c_proj.bias": (E,),
            p + "ln_2.weight": (E,), p + "ln_2.bias": (E,),
            p + "mlp.c_fc.weight": (E, n_inner), p + "mlp.c_fc.bias": (n_inner,),
            p + "mlp.c_proj.weight": (n_inner, E), p + "mlp.c_proj.bias": (E,),
        })  # fmt: skip
    return out


def check_state(state: dict) -> dict[str, tuple]:
    """`expected_shapes(state)` after checking that every key is there with its shape and no
    other weight is (the unused token embedding and the mask buffers may be present)."""
    want = expected_shapes(state)
    for key, shape in want.items():
        got = _shape(state, key)
        if got != shape:
            raise InputError(
                f"weight {key!r} has shape {got}, expected {shape} for this model size; the "
                "state dict is corrupt or not a Garg/Fu-style GPT-2."
            )
        if not state[key].is_floating_point() or not bool(torch.isfinite(state[key]).all()):
            raise InputError(f"weight {key!r} is not finite floating point; the file is corrupt.")
    extra = [
        k for k in state
        if k not in want and k != "_backbone.wte.weight" and not k.endswith(BUFFERS)
    ]  # fmt: skip
    if extra:
        raise InputError(
            f"unexpected weights {extra[:3]} in the state dict; it is not a Garg/Fu-style GPT-2 "
            "TransformerModel (or a variant icsim does not convert)."
        )
    return want


def convert(state: dict, n_head: int) -> Transformer:
    """An icsim Transformer (float32, `activation="gelu_tanh"`) computing the same function as
    their model on icsim's interleaved tokens of width d + 1."""
    want = check_state(state)
    n_embd, n_dims = want["_read_in.weight"]
    V.positive_int("n_head", n_head)
    if n_embd % n_head:
        raise InputError(f"n_head={n_head} does not divide the width n_embd={n_embd}.")
    n_layer = sum(k.endswith("ln_1.weight") for k in want)
    cfg = ModelConfig(
        n_dims_in=n_dims + 1, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
        mlp_hidden=want["_backbone.h.0.mlp.c_fc.weight"][1], activation="gelu_tanh",
        max_positions=want["_backbone.wpe.weight"][0],
    )  # fmt: skip
    s = {k: state[k].detach().to(torch.float32) for k in want}
    w_in = s["_read_in.weight"]
    out = {
        "read_in.weight": torch.cat([w_in, w_in[:, :1]], 1),  # y sits in their column 0
        "read_in.bias": s["_read_in.bias"],
        "wpe.weight": s["_backbone.wpe.weight"],
        "ln_f.weight": s["_backbone.ln_f.weight"], "ln_f.bias": s["_backbone.ln_f.bias"],
        "read_out.weight": s["_read_out.weight"], "read_out.bias": s["_read_out.bias"],
    }  # fmt: skip
    for i in range(n_layer):
        p, q = f"_backbone.h.{i}.", f"blocks.{i}."
        for ln in ("ln_1", "ln_2"):
            out[q + ln + ".weight"], out[q + ln + ".bias"] = (
                s[p + ln + ".weight"],
                s[p + ln + ".bias"],
            )
        # Conv1D stores [in, out]: nn.Linear's weight is its transpose; c_attn is [q | k | v]
        for j, name in enumerate("qkv"):
            cols = slice(j * n_embd, (j + 1) * n_embd)
            out[f"{q}attn.{name}.weight"] = s[p + "attn.c_attn.weight"][:, cols].T
            out[f"{q}attn.{name}.bias"] = s[p + "attn.c_attn.bias"][cols]
        for theirs, ours in (("attn.c_proj", "attn.proj"), ("mlp.c_fc", "mlp.fc"),
                             ("mlp.c_proj", "mlp.proj")):  # fmt: skip
            out[f"{q}{ours}.weight"] = s[f"{p}{theirs}.weight"].T
            out[f"{q}{ours}.bias"] = s[f"{p}{theirs}.bias"]
    with torch.random.fork_rng(devices=[]):  # the discarded init leaves the caller's RNG alone
        model = Transformer(cfg)
    from icsim.training.checkpoint import load_model_weights

    load_model_weights(model, {k: v.contiguous() for k, v in out.items()}, "converted GPT-2")
    return model.eval()


def garg_config(path: Path) -> dict:
    """What their run's config.yaml beside the checkpoint says (n_head, n_points, the task), or
    {} when there is none or PyYAML is not installed (the flags then say it)."""
    try:
        import yaml
    except ImportError:
        return {}
    try:
        conf = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    if not isinstance(conf, dict):
        return {}
    model, training = (v if isinstance(v := conf.get(k), dict) else {} for k in KEYS)
    out = {}
    if isinstance(model.get("n_head"), int):
        out["n_head"] = model["n_head"]
    curriculum = training.get("curriculum")
    points = curriculum.get("points") if isinstance(curriculum, dict) else None
    points = points.get("end") if isinstance(points, dict) else None
    if isinstance(points, int):
        out["n_points"] = points
    their = training.get("task")
    if isinstance(their, str):
        out["their_task"] = their
    if their == "linear_regression":
        out["task"], out["task_params"] = "linear_regression", {}
    elif their == "sparse_linear_regression":
        kwargs = training.get("task_kwargs")
        sparsity = kwargs.get("sparsity", 3) if isinstance(kwargs, dict) else 3
        out["task"], out["task_params"] = "sparse_linear_regression", {"sparsity": sparsity}
    return out


def write_run(
    path: str | Path,
    out: str | Path,
    *,
    n_head: int | None = None,
    n_points: int | None = None,
    task: str | None = None,
    task_params: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert their checkpoint at `path` into an icsim run directory `out` (config.json and one
    safetensors checkpoint) that `icsim eval`, `icsim atlas` and `load_trained` read. Values not
    given come from their config.yaml beside the file when there is one; else n_points = 2d + 1
    (Garg et al.'s 41 at d = 20) and the task linear regression. n_head has no default: the
    weights do not say it."""
    from icsim import rundir
    from icsim.training import checkpoint as ckpt
    from icsim.training.config import Curriculum, TrainConfig

    path = Path(path)
    state, step = load_state(path)
    found = garg_config(path.parent / "config.yaml")
    n_head = n_head or found.get("n_head")
    if n_head is None:
        raise InputError(
            "the number of attention heads is not in the weights and no config.yaml beside "
            f"{path.name} gives it: pass --n-head (Garg et al.'s standard model: 8)."
        )
    model = convert(state, n_head)
    d, mc = model.cfg.n_dims_in - 1, model.cfg
    if task is None and "their_task" in found and "task" not in found:
        raise InputError(
            f"their config.yaml names task {found['their_task']!r}, which icsim does not map "
            "by itself: pass --task (and --task-params) with the icsim task it was trained on."
        )
    task = task or found.get("task", "linear_regression")
    params = task_params if task_params is not None else found.get("task_params", {})
    n_points = V.positive_int("n_points", n_points or found.get("n_points") or 2 * d + 1)
    if 2 * n_points > mc.max_positions:
        raise InputError(
            f"n_points={n_points} needs {2 * n_points} positions, the model has "
            f"{mc.max_positions}; pass --n-points <= {mc.max_positions // 2}."
        )
    cfg = TrainConfig(
        task=task, dim=d, task_params=dict(params), n_layer=mc.n_layer, n_head=mc.n_head,
        n_embd=mc.n_embd, steps=max(step, 1),
        curriculum=Curriculum(enabled=False, dims_start=d, dims_end=d,
                              points_start=n_points, points_end=n_points),
    )  # fmt: skip
    origin = {"file": str(path), "format": "Garg et al. 2022 TransformerModel (HF GPT-2)"}
    record = {"train": cfg.to_dict(), "model_kind": "transformer", "model_config": mc.to_dict()}
    with rundir.replacing(out, overwrite=overwrite) as run:
        rundir.write_json(run / "config.json", {**record, "converted_from": origin})
        ckpt.save(run, step, model, {}, {**record, "converted_from": origin})
    return run
