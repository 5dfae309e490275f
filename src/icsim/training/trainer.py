"""The training loop: fresh prompts every step on the training device, loss on every prefix
(Garg et al. 2022), AdamW with clipping and a warm-up/decay schedule, atomic checkpoints and
bit-identical resume."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

import icsim
from icsim import provenance, rundir
from icsim.errors import InputError
from icsim.models import ModelConfig, build, get_format
from icsim.training import checkpoint as ckpt
from icsim.training import distributed
from icsim.training.config import TrainConfig, from_dict


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf; the last good checkpoint is kept."""


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


def model_config(cfg: TrainConfig) -> ModelConfig:
    fmt = token_format(cfg)
    tokens = 2 * cfg.n_points if cfg.token_format == "interleaved" else cfg.n_points
    return ModelConfig(
        n_dims_in=fmt.width,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        attention=cfg.attention,
        mlp=cfg.mlp,
        layer_norm=cfg.layer_norm,
        positional=cfg.positional and cfg.model != "lstm",
        read_in=cfg.read_in,
        max_positions=max(tokens, 1),
    )


def token_format(cfg: TrainConfig):
    return get_format(cfg.token_format, dim=cfg.dim)


def build_task(cfg: TrainConfig):
    return icsim.tasks.get(cfg.task, dim=cfg.dim, **cfg.task_params)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant, cosine or linear decay to lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    shape = 0.5 * (1 + math.cos(math.pi * frac)) if cfg.schedule == "cosine" else 1 - frac
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)


class Trainer:
    """Train one model. `Trainer(cfg, run_dir).train()`; `Trainer.resume(run_dir).train()`."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path | None = None,
        *,
        quiet=False,
        overwrite=False,
        _resuming=False,
    ):
        self.cfg = cfg
        self.quiet = quiet
        self.device = resolve_device(cfg.device)
        self.task = build_task(cfg)
        self.fmt = token_format(cfg)
        self.model_cfg = model_config(cfg)
        self.rank, self.world_size = distributed.setup(self.device, cfg.batch_size)
        if self.rank != 0:  # under torchrun, rank 0 alone writes the run directory
            run_dir = None
        self.run_dir = None if run_dir is None else rundir.prepare(run_dir, overwrite, _resuming)
        torch.manual_seed(cfg.seed)
        self.model = build(cfg.model, self.model_cfg).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.lr,
            betas=cfg.betas,
            weight_decay=cfg.weight_decay,
            fused=fused,
        )
        self.step = 0
        self._forward = self.model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self._forward = DistributedDataParallel(self.model)
        if cfg.compile or cfg.amp:
            if self.device.type != "cuda":
                self._notice("amp/compile requested on a CPU: skipped (they need a GPU).")
            elif cfg.compile:
                self._forward = torch.compile(self._forward)
        if self.run_dir is not None and not _resuming:
            rundir.write_json(self.run_dir / "config.json", self.describe())

    # -- bookkeeping -------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "train": self.cfg.to_dict(),
            "model_kind": self.cfg.model,
            "model_config": self.model_cfg.to_dict(),
            "parameters": self.model.num_parameters(),
            "seed": self.cfg.seed,
            "world_size": self.world_size,  # data-parallel processes (torchrun)
            "device": provenance.device_name(self.device),
            "versions": provenance.versions(),
            "git_commit": provenance.git_commit(),
        }

    def _notice(self, msg: str) -> None:
        if not self.quiet:
            print(f"icsim: {msg}", file=sys.stderr)

    @classmethod
    def resume(cls, run_dir: str | Path, *, quiet=False, steps: int | None = None) -> Trainer:
        """Continue the run in `run_dir` from its newest intact checkpoint."""
        run_dir = Path(run_dir)
        try:
            saved = json.loads((run_dir / "config.json").read_text())
        except (OSError, ValueError) as e:  # ValueError: bad JSON or not UTF-8
            raise InputError(f"cannot resume {run_dir}: no readable config.json ({e}).") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
            raise InputError(
                f"cannot resume {run_dir}: its config.json has no 'train' object (it was not "
                "written by icsim train); start a new run instead."
            )
        cfg = from_dict(TrainConfig, saved["train"], "config.json train")
        if steps is not None:
            cfg = replace(cfg, steps=steps)
        trainer = cls(cfg, run_dir, quiet=quiet, _resuming=True)
        found = ckpt.latest_intact(run_dir)
        if found is None:
            trainer._notice(f"no intact checkpoint in {run_dir}: starting from step 0.")
            return trainer
        path, (model_t, state_t, meta) = found
        ckpt.load_model_weights(trainer.model, model_t, str(path))
        ckpt.restore_optimizer(trainer.optimizer, state_t, meta)
        trainer.generator.set_state(state_t["rng.generator"].to(torch.uint8))
        torch.set_rng_state(state_t["rng.torch"].to(torch.uint8))
        trainer.step = meta["step"]
        if trainer.run_dir is not None:  # not on the ranks that write nothing
            trainer._truncate_logs(trainer.step)
        trainer._notice(f"resumed {run_dir} from step {trainer.step}.")
        return trainer

    def _truncate_logs(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from."""
        path = self.run_dir / "metrics.jsonl"
        if path.exists():
            keep = [ln for ln in path.read_text().splitlines() if _logged_step(ln) <= step]
            rundir.write_text(path, "".join(ln + "\n" for ln in keep))

    def save_checkpoint(self) -> Path:
        tensors, opt_meta = ckpt.optimizer_tensors(self.optimizer)
        tensors["rng.generator"] = self.generator.get_state().cpu()
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "model_kind": self.cfg.model,
            "model_config": self.model_cfg.to_dict(),
            "train": self.cfg.to_dict(),
            **opt_meta,
        }
        return ckpt.save(
            self.run_dir, self.step, self.model, tensors, meta, keep=self.cfg.keep_checkpoints
        )

    # -- training ------------------------------------------------------------------------
    def loss(self, batch) -> torch.Tensor:
        """Mean squared error over every prefix's prediction (Garg et al. 2022)."""
        use_amp = self.cfg.amp and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            pred = self.fmt.run(self._forward, batch)
        return (pred.float() - self.fmt.targets(batch).float()).square().mean()

    def train_step(self) -> torch.Tensor:
        cfg = self.cfg
        dims, points = cfg.curriculum.at(self.step)
        batch = self.task.sample(
            cfg.batch_size, points, generator=self.generator, device=self.device, active_dims=dims
        )
        batch = distributed.shard(batch, self.rank, self.world_size)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(cfg, self.step)
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    def _check_finite(self, loss_value: float) -> None:
        bad_weights = any(not torch.isfinite(p).all() for p in self.model.parameters())
        if not math.isfinite(loss_value) or bad_weights:
            where = "the weights" if bad_weights else f"the loss ({loss_value})"
            kept = ckpt.list_checkpoints(self.run_dir) if self.run_dir else []
            msg = (
                f"training diverged at step {self.step}: {where} became NaN/inf. "
                + (f"The last good checkpoint is {kept[-1]}. " if kept else "")
                + "Lower --lr or enable --grad-clip."
            )
            if self.run_dir is not None:
                self._log({"step": self.step, "diverged": True, "loss": str(loss_value)})
            raise TrainingDiverged(msg)

    def _log(self, row: dict) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def train(self, stop_after: int | None = None) -> dict:
        """Train to `cfg.steps` (or stop early after `stop_after` more steps, for tests).

        The loss is read back from the device only every `log_every` steps."""
        from tqdm import tqdm

        cfg = self.cfg
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        self.model.train()
        tb = self._tensorboard()
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=self.quiet or not sys.stderr.isatty(),
            unit="step",
            dynamic_ncols=True,
        )
        acc, n_acc, t_last, last_loss = None, 0, time.perf_counter(), float("nan")
        while self.step < end:
            loss = self.train_step()
            acc = loss if acc is None else acc + loss
            n_acc += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == end:
                last_loss = distributed.mean_over_ranks(acc / n_acc).item()
                self._check_finite(last_loss)
                now = time.perf_counter()
                rate = n_acc / (now - t_last)
                dims, points = cfg.curriculum.at(self.step - 1)
                row = {
                    "step": self.step,
                    "loss": last_loss,
                    "lr": lr_at(cfg, self.step - 1),
                    "dims": dims,
                    "points": points,
                    "steps_per_s": rate,
                }
                bar.set_postfix(loss=f"{last_loss:.4f}", dims=dims, points=points)
                if self.run_dir is not None:
                    self._log(row)
                    if tb is not None:
                        tb.add_scalar("train/loss", last_loss, self.step)
                        tb.add_scalar("train/lr", row["lr"], self.step)
                acc, n_acc, t_last = None, 0, now
            if self.run_dir is not None and (
                self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
            ):
                self.save_checkpoint()
        bar.close()
        if tb is not None:
            tb.close()
        if self.run_dir is not None and self.step == cfg.steps:
            self._write_csv()
        return {"step": self.step, "loss": last_loss}

    def _tensorboard(self):
        if self.run_dir is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional extra: icsim[tensorboard]
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _write_csv(self) -> None:
        rows = [
            json.loads(ln)
            for ln in (self.run_dir / "metrics.jsonl").read_text().splitlines()
            if ln.strip()
        ]
        rows = [r for r in rows if "diverged" not in r]
        if rows:
            with open(self.run_dir / "metrics.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; inf for a line torn by a kill (dropped on resume)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def load_trained(run_dir: str | Path, device="cpu"):
    """(model, token_format, TrainConfig) from a run directory's newest intact checkpoint."""
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
