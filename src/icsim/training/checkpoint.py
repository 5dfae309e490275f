"""Checkpoints as safetensors + a JSON sidecar; written atomically, verified by checksum.

A checkpoint is a directory `step_XXXXXXXX/` holding `model.safetensors`, `state.safetensors`
(optimizer moments and RNG states) and `meta.json` (model config, step, optimizer
hyper-parameters, SHA-256 of both tensor files). It is assembled in a temporary directory,
every file fsync'ed, then renamed into place, so a process killed at any moment leaves either
the previous or the new checkpoint complete. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from icsim.errors import InputError

PREFIX = "step_"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split an optimizer's state dict into flat tensors and JSON-able hyper-parameters."""
    sd = optimizer.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{pid}.{key}"] = t.detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def restore_optimizer(optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save(
    run_dir: Path, step: int, model: torch.nn.Module, extra_tensors: dict, meta: dict, keep: int = 3
) -> Path:
    """Write checkpoint `step` atomically and keep the newest `keep` ones."""
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{step:08d}"
    tmp = ckpt_root / f".tmp_{PREFIX}{step:08d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model_sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(model_sd, tmp / "model.safetensors")
    save_file(extra_tensors, tmp / "state.safetensors")
    meta = {
        **meta,
        "step": step,
        "sha256": {
            "model.safetensors": _sha256(tmp / "model.safetensors"),
            "state.safetensors": _sha256(tmp / "state.safetensors"),
        },
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    for f in tmp.iterdir():
        _fsync(f)
    _fsync(tmp)
    if final.exists():  # same step written again (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(ckpt_root)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def load(ckpt: Path) -> tuple[dict, dict, dict]:
    """(model tensors, extra tensors, meta) of one checkpoint; InputError if it is not intact."""
    ckpt = Path(ckpt)
    meta_path = ckpt / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(
            f"checkpoint {ckpt} has no readable meta.json ({e}); "
            "it is incomplete or corrupt: resume from an earlier one."
        ) from None
    for name, digest in meta.get("sha256", {}).items():
        path = ckpt / name
        if not path.exists() or _sha256(path) != digest:
            raise InputError(
                f"checkpoint file {path} is missing or does not match its SHA-256 "
                "in meta.json (truncated or tampered): resume from an earlier one."
            )
    try:
        return load_file(ckpt / "model.safetensors"), load_file(ckpt / "state.safetensors"), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"checkpoint {ckpt} is not valid safetensors ({e}).") from None


def latest_intact(run_dir: Path) -> tuple[Path, tuple] | None:
    """The newest checkpoint that loads and verifies, with its contents; None if there is none."""
    for ckpt in reversed(list_checkpoints(run_dir)):
        try:
            return ckpt, load(ckpt)
        except InputError:
            continue
    return None


def load_model_weights(model: torch.nn.Module, tensors: dict, where: str) -> None:
    expected = model.state_dict()
    for name, t in expected.items():
        if name not in tensors or tensors[name].shape != t.shape:
            got = tuple(tensors[name].shape) if name in tensors else "missing"
            raise InputError(
                f"{where}: weight {name!r} has shape {got}, the model expects "
                f"{tuple(t.shape)}; the checkpoint belongs to another model config."
            )
    unexpected = set(tensors) - set(expected)
    if unexpected:
        raise InputError(f"{where}: unexpected weights {sorted(unexpected)[:3]}…")
    model.load_state_dict(tensors)
