"""`icsim train`'s flat preset compiled into the training loop's arguments: a TrainConfig's
task with its curriculum, MSE on every prefix (Garg et al. 2022), its optimiser settings and run
intervals; and reading such a run back (`load_trained`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from icsim import _validate as V
from icsim.errors import InputError
from icsim.training import batches, distributed
from icsim.training import checkpoint as ckpt
from icsim.training.config import TrainConfig, build_task, from_dict, model_config, token_format
from icsim.training.losses import mse_every_prefix
from icsim.training.run import Run

VECTORISABLE = ("transformer", "looped")  # models the vectorised multi-seed step supports


def resolve_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(
            f"device {device!r} is not a valid torch device; use 'cpu' or 'cuda'."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} was asked for but CUDA is not available here; use --device cpu."
        )
    return dev


def check_seeds(seeds) -> list[int]:
    """A non-empty list of distinct non-negative integer seeds."""
    if isinstance(seeds, int) or not hasattr(seeds, "__iter__"):
        raise InputError(f"seeds must be a list of integers, got {seeds!r}; e.g. seeds=[0, 1, 2].")
    seeds = [V.nonnegative_int("seed", s) for s in seeds]
    if not seeds:
        raise InputError("seeds is empty: give at least one seed, e.g. seeds=[0, 1, 2, 3].")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seeds must be distinct (each gets its own run directory), got {seeds}.")
    return seeds


def static_points(cfg: TrainConfig, fmt, mc, device: torch.device) -> int | None:
    """The length every prompt is padded to when the run is compiled (on a GPU) with a curriculum
    on a causal model whose format leaves the mask to it, so torch.compile does not retrace at
    every stage; None otherwise (padding is then only extra work)."""
    if not (cfg.compile and device.type == "cuda" and cfg.curriculum.enabled):
        return None
    points_end = cfg.n_points  # the last stage's length
    if fmt.mask(points_end) is not None or not getattr(mc, "causal", False):
        return None
    return points_end


def arguments(
    cfg: TrainConfig,
    run_dir=None,
    *,
    seeds=None,
    quiet=False,
    overwrite=False,
    resume=False,
    _resuming=False,
    vectorise=None,
) -> tuple[dict, object, object]:
    """(Trainer arguments, task, ModelConfig) for a TrainConfig: its task with the curriculum,
    MSE on every prefix, the optimiser settings and the run's intervals; `seeds` trains several
    models vectorised."""
    multi = seeds is not None
    seeds = check_seeds(seeds) if multi else [cfg.seed]
    if multi and cfg.model not in VECTORISABLE:
        raise InputError(
            f"multi-seed training supports models {', '.join(VECTORISABLE)}, got "
            f"{cfg.model!r}; train each seed with its own Trainer instead."
        )
    device = resolve_device(cfg.device)
    task, fmt, mc = build_task(cfg), token_format(cfg), model_config(cfg)
    distributed.check_divisible(cfg.batch_size, distributed.world()[1])
    from icsim.models import build

    models = []
    for s in seeds:  # the global seed, then the weights: a one-seed run's draws for every seed
        torch.manual_seed(s)
        models.append(build(cfg.model, mc).to(device))

    pad_to = static_points(cfg, fmt, mc, device)

    def sample(step, rng):
        dims, points = cfg.active(step)
        batch = task.sample(
            cfg.batch_size, points, generator=rng.device, device=device, active_dims=dims
        )
        return batch if pad_to is None else batches.pad_points(batch, pad_to)

    def record(k):
        train = replace(cfg, seed=seeds[k]) if multi else cfg
        return {"train": train.to_dict(), "model_kind": cfg.model, "model_config": mc.to_dict()}

    def curriculum(step):
        return dict(zip(("dims", "points"), cfg.active(step)))

    run = Run(
        dir=run_dir,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
        quiet=quiet,
        overwrite=overwrite,
        resume=resume or _resuming,
    )
    kwargs = dict(
        model=models if multi else models[0],
        fmt=fmt,
        sample=sample,
        loss=mse_every_prefix(fmt),
        optim=cfg.optim,
        run=run,
        seeds=seeds,
        device=device,
        vectorise=multi if vectorise is None else vectorise,
        amp=cfg.amp,
        compile=cfg.compile,
        record=record,
        log_extra=curriculum,
    )
    return kwargs, task, mc


def read_config(run_dir: Path, path: Path) -> dict:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON or not UTF-8
        raise InputError(f"cannot resume {run_dir}: no readable config.json ({e}).") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
        raise InputError(
            f"cannot resume {run_dir}: its config.json has no 'train' object (it was not "
            "written by icsim train); start a new run instead."
        )
    return saved


def load_trained(run_dir: str | Path, device="cpu"):
    """(model, token_format, TrainConfig) from a run directory's newest intact checkpoint."""
    from icsim.models import build

    run_dir = Path(run_dir)
    found = ckpt.latest_intact(run_dir)
    if found is None:
        raise InputError(
            f"{run_dir} has no intact checkpoint to load; train it first "
            "(icsim train) or check the path."
        )
    path, (model_t, _, meta) = found
    cfg = from_dict(TrainConfig, meta["train"], f"{path}/meta.json train")
    model = build(meta["model_kind"], meta["model_config"])
    ckpt.load_model_weights(model, model_t, str(path))
    return model.to(device).eval(), token_format(cfg), cfg
