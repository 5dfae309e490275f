"""Checkpoints as safetensors + a JSON sidecar; written atomically, verified by checksum.

A checkpoint is a directory `step_XXXXXXXX/` holding `model.safetensors`, `state.safetensors`
(optimizer moments, RNG states, the losses summed since the last log row) and `meta.json` (model
config, step, optimizer hyper-parameters, the run's id and config digest, SHA-256 of both tensor
files and, mandatory, of itself). It is assembled in a temporary directory, every file fsync'ed,
then renamed into place, so a process killed at any moment leaves either the previous or the new
checkpoint complete. Loading verifies every checksum and that a training checkpoint's optimizer
and RNG state is whole and in range; nothing is ever unpickled (only JSON and safetensors are
parsed), so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from icsim.errors import InputError
from icsim.training.errors import TrainingDiverged

PREFIX = "step_"
TENSOR_FILES = ("model.safetensors", "state.safetensors")


class CheckpointError(InputError):
    """A checkpoint that cannot be written, or one that is incomplete, corrupt or tampered."""


class CheckpointSkipped(UserWarning):
    """A newer checkpoint was not intact and an older one is used instead."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _meta_digest(meta: dict) -> str:
    """SHA-256 of the sidecar itself (canonical JSON without this entry): a flipped digit in
    meta.json that still parses (a step, a shape) is caught too."""
    body = json.loads(json.dumps({k: v for k, v in meta.items() if k != "meta_sha256"}))
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


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


def restore_optimizer(optimizer, tensors: dict, meta: dict, where: str = "checkpoint") -> None:
    """Load an optimizer's state saved by `optimizer_tensors`; CheckpointError when its groups
    or moments do not fit this optimizer's parameters."""
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for pid, entries in state.items():
        shape = tuple(params[pid].shape) if pid < len(params) else None
        for key, value in entries.items():
            if key != "step" and tuple(value.shape) != shape:
                raise CheckpointError(
                    f"{where}: optimizer state {key!r} of parameter {pid} has shape "
                    f"{tuple(value.shape)}, the parameter {shape}; the checkpoint is corrupt "
                    "or belongs to another model config."
                )
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{where}: corrupt optimizer state ({e}).") from None


def save(
    run_dir: Path, step: int, model: torch.nn.Module, extra_tensors: dict, meta: dict, keep: int = 3
) -> Path:
    """Write checkpoint `step` atomically and keep the newest `keep` ones.

    Every file is written into a temporary directory and fsync'ed before one rename publishes
    it; a failed write (a full or read-only disk) removes the temporary directory and leaves
    the earlier checkpoints as they were."""
    ckpt_root = Path(run_dir) / "checkpoints"
    final = ckpt_root / f"{PREFIX}{step:08d}"
    model_sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in model_sd.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:  # never let NaN/inf weights replace a good checkpoint
        kept = list_checkpoints(run_dir)
        raise TrainingDiverged(
            f"training diverged by step {step}: weight {bad[0]!r} is NaN/inf; not saving it. "
            + (f"The last good checkpoint is {kept[-1]}. " if kept else "")
            + "Lower --lr or enable --grad-clip."
        )
    tmp = ckpt_root / f".tmp_{PREFIX}{step:08d}_{os.getpid()}"
    try:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(ckpt_root)
        tmp.mkdir()
        save_file(model_sd, tmp / "model.safetensors")
        save_file(extra_tensors, tmp / "state.safetensors")
        meta = {
            **meta,
            "step": step,
            "sha256": {name: _sha256(tmp / name) for name in TENSOR_FILES},
        }
        meta["meta_sha256"] = _meta_digest(meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        if final.exists():  # same step written again (e.g. after a resume): swap it out
            os.replace(final, ckpt_root / f".old_{final.name}_{os.getpid()}")
        os.replace(tmp, final)
        _fsync(ckpt_root)
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = [c for c in list_checkpoints(run_dir) if c != final]
        reason = getattr(e, "strerror", None) or str(e)
        raise CheckpointError(
            f"cannot write checkpoint {final}: {reason}. "
            + (f"The previous checkpoint {kept[-1]} is intact. " if kept else "")
            + "Free space or make the directory writable, then continue with --resume."
        ) from None
    for old in list_checkpoints(run_dir)[:-keep]:
        # renamed first, so a kill while deleting never leaves a half-deleted step_* directory
        trash = ckpt_root / f".old_{old.name}_{os.getpid()}"
        try:
            os.replace(old, trash)
        except OSError:
            continue
        shutil.rmtree(trash, ignore_errors=True)
    _remove_leftovers(ckpt_root)
    return final


def _remove_leftovers(ckpt_root: Path) -> None:
    """Remove temporary and half-deleted directories left by a process that was killed."""
    for p in ckpt_root.iterdir():
        if p.name.startswith((".tmp_", ".old_")):
            shutil.rmtree(p, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def _corrupt(ckpt: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {ckpt} {why}; it is incomplete, corrupt or tampered with: "
        "resume from an earlier one (--resume picks the newest intact checkpoint)."
    )


def load(ckpt: Path) -> tuple[dict, dict, dict]:
    """(model tensors, extra tensors, meta) of one checkpoint; CheckpointError if it is not
    intact. Only JSON and safetensors are parsed: nothing is unpickled, no code runs."""
    ckpt = Path(ckpt)
    try:
        meta = json.loads((ckpt / "meta.json").read_bytes())
    except FileNotFoundError:
        raise _corrupt(ckpt, "has no meta.json sidecar") from None
    except OSError as e:
        raise _corrupt(ckpt, f"has an unreadable meta.json ({e.strerror})") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise _corrupt(ckpt, f"has a meta.json that is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise _corrupt(ckpt, "has a meta.json that is not a JSON object")
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or not all(
        isinstance(digests.get(n), str) for n in TENSOR_FILES
    ):
        raise _corrupt(ckpt, f"has a meta.json without SHA-256 checksums of {TENSOR_FILES}")
    if "meta_sha256" not in meta:  # mandatory: else an edited sidecar could be re-hashed
        raise _corrupt(ckpt, "has a meta.json without its own SHA-256 (meta_sha256)")
    if meta["meta_sha256"] != _meta_digest(meta):
        raise _corrupt(ckpt, "has a meta.json that does not match its own SHA-256")
    step = meta.get("step")
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0) or (
        ckpt.name.startswith(PREFIX) and ckpt.name != f"{PREFIX}{step:08d}"
    ):
        raise _corrupt(ckpt, f"records step {step!r}, which does not match its name")
    tensors = []
    for name in TENSOR_FILES:
        # Read once, then hash and parse the same bytes: safetensors' load_file would map the
        # file, so a later change to it on disk would show through (or crash, if truncated).
        try:
            data = (ckpt / name).read_bytes()
        except OSError as e:
            raise _corrupt(ckpt, f"has no readable {name} ({e.strerror})") from None
        if hashlib.sha256(data).hexdigest() != digests[name]:
            raise _corrupt(ckpt, f"has a {name} that does not match its SHA-256 in meta.json")
        try:
            tensors.append(load_safetensors(data))
        except (SafetensorError, ValueError) as e:
            raise _corrupt(ckpt, f"has a {name} that is not valid safetensors ({e})") from None
    if "param_groups" in meta:  # a training checkpoint: optimizer and RNG states must be sound
        problem = _training_state_problem(tensors[1], meta["param_groups"])
        if problem:
            raise _corrupt(ckpt, problem)
    return tensors[0], tensors[1], meta


RNG_TENSORS = ("rng.generator", "rng.torch")


def _training_state_problem(state: dict, groups) -> str | None:
    """Why a training checkpoint's optimizer/RNG state cannot be resumed from, or None.
    Adam's hyper-parameters and moments must be in range (a sidecar with betas 5 or eps -1
    would only crash, or silently misbehave, steps later)."""
    missing = [n for n in RNG_TENSORS if n not in state]
    if missing:
        return f"has no {missing[0]!r} tensor in state.safetensors"
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        return "has param_groups that are not a non-empty list of objects"
    for g in groups:
        ok = (
            _is_num(g.get("lr"), low=0)
            and _is_num(g.get("eps"), low=0, open_low=True)
            and _is_num(g.get("weight_decay"), low=0)
            and isinstance(g.get("betas"), list)
            and len(g["betas"]) == 2
            and all(_is_num(b, low=0, high=1) for b in g["betas"])
            and isinstance(g.get("params"), list)
            and all(isinstance(p, int) and not isinstance(p, bool) for p in g["params"])
        )
        if not ok:
            keys = {k: g.get(k) for k in ("lr", "betas", "eps", "weight_decay")}
            return f"has optimizer settings out of range ({keys})"
    for name, t in state.items():
        if not name.startswith("optim."):
            continue
        if name.count(".") != 2 or not name.split(".")[1].isdigit():
            return f"has a malformed optimizer entry {name!r}"
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            return f"has optimizer state {name!r} that is not finite floats"
        if name.endswith((".exp_avg_sq", ".step")) and bool((t < 0).any()):
            return f"has negative optimizer state {name!r}"
    return None


def _is_num(v, low=None, high=None, open_low=False) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
        return False
    if low is not None and (v < low or (open_low and v == low)):
        return False
    return high is None or v < high


def latest_intact(run_dir: Path, at_most: int | None = None) -> tuple[Path, tuple] | None:
    """The newest checkpoint (of step <= `at_most`, if given) that loads and verifies, with its
    contents; None if there is none. Each newer one that fails is named in a
    `CheckpointSkipped` warning."""
    for ckpt in reversed(list_checkpoints(run_dir)):
        digits = ckpt.name.removeprefix(PREFIX)
        if at_most is not None and (not digits.isdigit() or int(digits) > at_most):
            continue
        try:
            return ckpt, load(ckpt)
        except CheckpointError as e:
            warnings.warn(f"skipping {ckpt.name}: {e}", CheckpointSkipped, stacklevel=2)
    return None


def load_model_weights(model: torch.nn.Module, tensors: dict, where: str) -> None:
    """Copy checkpoint tensors into `model`; CheckpointError naming the first weight whose
    name or shape does not fit (a checkpoint of another model config)."""
    expected = model.state_dict()
    for name, t in expected.items():
        if name not in tensors or tensors[name].shape != t.shape:
            got = tuple(tensors[name].shape) if name in tensors else "missing"
            raise CheckpointError(
                f"{where}: weight {name!r} has shape {got}, the model expects "
                f"{tuple(t.shape)}; the checkpoint belongs to another model config."
            )
    unexpected = set(tensors) - set(expected)
    if unexpected:
        raise CheckpointError(
            f"{where}: unexpected weights {sorted(unexpected)[:3]}; "
            "the checkpoint belongs to another model config."
        )
    model.load_state_dict(tensors)
