"""Many seeds in one process: K copies of one model, each with its own seed, prompts and AdamW
state, trained together as one vectorised step (torch.func.stack_module_state + functional_call
+ vmap), so that K small models share one set of kernel launches instead of K.

Seed k's model, prompts and optimizer evolve as `Trainer(replace(cfg, seed=k))` would make
them (same initial weights, same prompt generator, same AdamW, clipping and schedule), up to
floating-point rounding; each seed gets its own run directory that `load_trained` and
`Trainer.resume` read like any single run's.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from icsim import _validate as V
from icsim import provenance, rundir
from icsim.errors import InputError
from icsim.models import build
from icsim.tasks.base import TaskBatch
from icsim.training import checkpoint as ckpt
from icsim.training.config import TrainConfig
from icsim.training.trainer import (
    TrainingDiverged,
    build_task,
    lr_at,
    model_config,
    resolve_device,
    token_format,
)

VECTORISABLE = ("transformer", "looped")


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


class MultiSeedTrainer:
    """Train `len(seeds)` models of one config together: `MultiSeedTrainer(cfg, seeds).train()`.

    run_root: if given, seed s writes `run_root/seed_<s>/` (config.json, metrics.jsonl,
    checkpoints), the layout of a single `Trainer` run.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        seeds,
        run_root: str | Path | None = None,
        *,
        quiet=False,
        overwrite=False,
    ):
        self.seeds = check_seeds(seeds)
        if cfg.model not in VECTORISABLE:
            raise InputError(
                f"multi-seed training supports models {', '.join(VECTORISABLE)}, got "
                f"{cfg.model!r}; train each seed with its own Trainer instead."
            )
        self.cfg, self.quiet = cfg, quiet
        self.device = resolve_device(cfg.device)
        self.task = build_task(cfg)
        self.fmt = token_format(cfg)
        self.model_cfg = model_config(cfg)
        self.run_dirs = None
        if run_root is not None:
            root = Path(run_root)
            self.run_dirs = [rundir.prepare(root / f"seed_{s}", overwrite) for s in self.seeds]
        models = []
        for s in self.seeds:  # the same draws as Trainer: manual_seed(seed), then build
            torch.manual_seed(s)
            models.append(build(cfg.model, self.model_cfg).to(self.device))
        params, buffers = stack_module_state(models)  # leaves [K, ...] that require grad
        self.params, self.buffers = params, buffers
        # A weightless copy to call functionally; eval() is exact since dropout is 0 here.
        self._skeleton = copy.deepcopy(models[0]).to("meta").eval()
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in self.seeds]
        # AdamW is elementwise, so one optimizer over stacked [K, ...] tensors is K optimizers.
        self.optimizer = torch.optim.AdamW(
            self.params.values(),
            lr=cfg.lr,
            betas=cfg.betas,
            weight_decay=cfg.weight_decay,
            fused=self.device.type == "cuda",
        )
        self.step = 0
        if (cfg.compile or cfg.amp) and self.device.type != "cuda":
            self._notice("amp/compile requested on a CPU: skipped (they need a GPU).")
        elif cfg.compile:
            self._notice("compile is not used by multi-seed training yet: running eager.")
        if self.run_dirs is not None:
            for k, d in enumerate(self.run_dirs):
                rundir.write_json(d / "config.json", self.describe(k))

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    def seed_config(self, k: int) -> TrainConfig:
        return replace(self.cfg, seed=self.seeds[k])

    def describe(self, k: int) -> dict:
        """Seed k's config.json: what Trainer.describe writes, plus the seeds trained with it."""
        return {
            "train": self.seed_config(k).to_dict(),
            "model_kind": self.cfg.model,
            "model_config": self.model_cfg.to_dict(),
            "parameters": sum(p[0].numel() for p in self.params.values()),
            "seed": self.seeds[k],
            "device": provenance.device_name(self.device),
            "versions": provenance.versions(),
            "git_commit": provenance.git_commit(),
            "multi_seed": {"seeds": self.seeds, "index": k},
        }

    def _notice(self, msg: str) -> None:
        if not self.quiet:
            print(f"icsim: {msg}", file=sys.stderr)

    # -- the vectorised step -------------------------------------------------------------
    def _loss(self, params, buffers, xs, ys):
        """One model's loss (vmapped over models): MSE over every prefix, as Trainer.loss."""
        batch = TaskBatch(xs=xs, ys=ys, task=self.task.name)

        def forward(tokens, mask=None, return_hidden=False):
            return functional_call(self._skeleton, (params, buffers), (tokens,), {"mask": mask})

        pred = self.fmt.run(forward, batch)
        return (pred.float() - self.fmt.targets(batch).float()).square().mean()

    def losses(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Per-model losses [K] on per-model prompts xs [K, B, n, d], ys [K, B, n]."""
        use_amp = self.cfg.amp and self.device.type == "cuda"
        # PyTorch has no vmap rule for the CPU flash-attention kernel (it would loop over the
        # models); the math kernel is made of batched matmuls and is exact.
        math_sdpa = sdpa_kernel(SDPBackend.MATH) if self.device.type == "cpu" else nullcontext()
        with math_sdpa, torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            return vmap(self._loss)(self.params, self.buffers, xs, ys)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's prompts, one batch per seed from that seed's own generator."""
        cfg = self.cfg
        dims, points = cfg.curriculum.at(self.step)
        batches = [
            self.task.sample(
                cfg.batch_size, points, generator=g, device=self.device, active_dims=dims
            )
            for g in self.generators
        ]
        return torch.stack([b.xs for b in batches]), torch.stack([b.ys for b in batches])

    def clip_gradients(self) -> None:
        """clip_grad_norm_ per model: each model's gradient norm over all its parameters."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0).sqrt()
        coef = (self.cfg.grad_clip / (norms + 1e-6)).clamp(max=1.0)  # as clip_grad_norm_
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))

    def train_step(self) -> torch.Tensor:
        """One step of every model; returns the per-model losses [K] (not read back)."""
        xs, ys = self.sample()
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.cfg, self.step)
        losses = self.losses(xs, ys)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # model k's parameters get exactly ∇ loss_k
        if self.cfg.grad_clip > 0:
            self.clip_gradients()
        self.optimizer.step()
        self.step += 1
        return losses.detach()

    # -- per-seed models, logs and checkpoints -------------------------------------------
    def model(self, k: int) -> torch.nn.Module:
        """Seed k's model as an ordinary module (a copy of the current weights)."""
        m = build(self.cfg.model, self.model_cfg).to(self.device)
        m.load_state_dict({name: p[k].detach().clone() for name, p in self.params.items()})
        return m

    def models(self) -> list[torch.nn.Module]:
        return [self.model(k) for k in range(self.n_models)]

    def _optimizer_for(self, k: int, model: torch.nn.Module) -> torch.optim.Optimizer:
        """Seed k's AdamW as a Trainer would hold it (for its checkpoint)."""
        opt = torch.optim.AdamW(
            model.parameters(),
            lr=self.optimizer.param_groups[0]["lr"],
            betas=self.cfg.betas,
            weight_decay=self.cfg.weight_decay,
            fused=self.device.type == "cuda",
        )
        by_name = dict(model.named_parameters())
        for name, stacked in self.params.items():
            state = self.optimizer.state.get(stacked)
            if state:
                opt.state[by_name[name]] = {
                    key: (v.clone() if key == "step" else v[k].clone()) for key, v in state.items()
                }
        return opt

    def save_checkpoints(self) -> list[Path]:
        """One checkpoint per seed, in the format `Trainer.resume` and `load_trained` read."""
        if self.run_dirs is None:
            raise InputError("this MultiSeedTrainer has no run directories: pass run_root=.")
        paths = []
        for k, run_dir in enumerate(self.run_dirs):
            model = self.model(k)
            tensors, opt_meta = ckpt.optimizer_tensors(self._optimizer_for(k, model))
            tensors["rng.generator"] = self.generators[k].get_state().cpu()
            tensors["rng.torch"] = torch.get_rng_state()
            meta = {
                "model_kind": self.cfg.model,
                "model_config": self.model_cfg.to_dict(),
                "train": self.seed_config(k).to_dict(),
                **opt_meta,
            }
            keep = self.cfg.keep_checkpoints
            paths.append(ckpt.save(run_dir, self.step, model, tensors, meta, keep=keep))
        return paths

    def _log(self, k: int, row: dict) -> None:
        with open(self.run_dirs[k] / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def _check_finite(self, losses: list[float]) -> None:
        finite = torch.stack([torch.isfinite(p).flatten(1).all(1) for p in self.params.values()])
        weights_ok = finite.all(0).tolist()
        bad = [
            s
            for s, loss, ok in zip(self.seeds, losses, weights_ok)
            if not (math.isfinite(loss) and ok)
        ]
        if bad:
            raise TrainingDiverged(
                f"training diverged at step {self.step} for seeds {bad}: the loss or the weights "
                "became NaN/inf. Lower --lr or enable --grad-clip."
            )

    def train(self, stop_after: int | None = None) -> dict:
        """Train every model to `cfg.steps` (or `stop_after` more steps); the losses are read
        back from the device only every `log_every` steps. Returns {"step", "loss": [K]}."""
        from tqdm import tqdm

        cfg = self.cfg
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=self.quiet or not sys.stderr.isatty(),
            unit="step",
            dynamic_ncols=True,
        )
        acc, n_acc, t_last = None, 0, time.perf_counter()
        last = [float("nan")] * self.n_models
        while self.step < end:
            losses = self.train_step()
            acc = losses if acc is None else acc + losses
            n_acc += 1
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == end:
                last = (acc / n_acc).tolist()
                self._check_finite(last)
                now = time.perf_counter()
                dims, points = cfg.curriculum.at(self.step - 1)
                bar.set_postfix(loss=f"{sum(last) / len(last):.4f}", models=self.n_models)
                if self.run_dirs is not None:
                    for k in range(self.n_models):
                        self._log(
                            k,
                            {
                                "step": self.step,
                                "loss": last[k],
                                "lr": lr_at(cfg, self.step - 1),
                                "dims": dims,
                                "points": points,
                                "steps_per_s": n_acc / (now - t_last),
                            },
                        )
                acc, n_acc, t_last = None, 0, now
            if self.run_dirs is not None and (
                self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
            ):
                self.save_checkpoints()
        bar.close()
        if self.run_dirs is not None and self.step == cfg.steps:
            for d in self.run_dirs:
                _write_csv(d)
        return {"step": self.step, "loss": last}


def _write_csv(run_dir: Path) -> None:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    if rows:
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


__all__ = ["MultiSeedTrainer", "check_seeds"]
