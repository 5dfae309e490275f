"""The training loop of icsim: every trained model in the package goes through `Trainer`.

What is trained on is an argument, not a subclass: `sample(step, rng)` draws the step's batch
and `loss(forward, batch)` scores it (`icsim.training.losses`), so MSE on every prefix (Garg et
al. 2022), regression to an algorithm's output (Giannou et al. 2025), varying numbers of
demonstrations (Liu et al. 2025) and unrolled solvers (LISTA) share one loop. Many seeds train
as one vectorised step (torch.func over stacked weights), one run over many processes through
torchrun (DDP); logging, atomic checkpoints, bit-identical resume, divergence and signal
handling and the CSV are written once, here. `icsim train`'s flat `TrainConfig` is compiled
into this loop's arguments by `Trainer.from_config`.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from icsim import progress, provenance, rundir
from icsim.errors import InputError
from icsim.training import batches, distributed, preset
from icsim.training import run as runs
from icsim.training.config import TrainConfig, build_task, from_dict, model_config, token_format
from icsim.training.errors import TrainingDiverged, TrainingInterrupted
from icsim.training.optim import Optim
from icsim.training.preset import VECTORISABLE, check_seeds, load_trained, resolve_device
from icsim.training.run import Rng, Run
from icsim.training.trainer_io import Checkpoints, Logs


def lr_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of a TrainConfig run at `step` (see `Optim.lr_at`)."""
    return cfg.optim.lr_at(step)


class Trainer(Checkpoints, Logs):
    """Train a model (or one model per seed, vectorised) on `sample`d batches under `loss`.

        trainer = Trainer(model, fmt, sample=lambda step, rng: task.sample(64, 41,
                          generator=rng.device, device=dev), loss=mse_every_prefix(fmt),
                          optim=Optim(steps=2000, lr=1e-3), run=Run(dir="runs/a"), seeds=(0,))
        trainer.train()

    model: an nn.Module, or a list of modules, one per seed (built by the caller, each after
      `torch.manual_seed(seed)` if it should match a one-seed run); several train together in
      one vmapped step over stacked weights (`vectorise=True` forces that mode for one).
    sample(step, rng) -> batch: the step's batch drawn from `rng` (an `Rng`: rng.device, rng.cpu),
      a TaskBatch or any tuple/dict of them and tensors.
    loss(forward, batch) -> scalar tensor (`icsim.training.losses`).
    record(k) -> dict: what seed k's config.json and every checkpoint's sidecar hold (model kind
      and config, the preset...), so `load_trained` can rebuild the model.
    log_extra(step) -> dict: extra columns of a log row (e.g. the curriculum's dims/points).
    on_log(row): called with every log row (e.g. to print progress).

    `Trainer(cfg: TrainConfig, run_dir, quiet=, overwrite=)` is `Trainer.from_config`.
    """

    def __init__(
        self,
        model,
        fmt=None,
        *,
        sample: Callable | None = None,
        loss: Callable | None = None,
        optim: Optim | None = None,
        run: Run | None = None,
        seeds: Sequence[int] | None = None,
        device=None,
        vectorise: bool | None = None,
        amp: bool = False,
        compile: bool = False,
        record: Callable[[int], dict] | None = None,
        log_extra: Callable[[int], dict] | None = None,
        on_log: Callable[[dict], None] | None = None,
        **rest,
    ):
        if isinstance(model, TrainConfig):  # the `icsim train` preset: Trainer(cfg, run_dir)
            kwargs, task, mc = preset.arguments(
                model, fmt, seeds=seeds, vectorise=vectorise, **rest
            )
            Trainer.__init__(self, **kwargs)
            self.cfg, self.task, self.model_cfg = model, task, mc
            return
        self.cfg = self.task = self.model_cfg = None  # set by the TrainConfig preset
        if rest:
            raise TypeError(f"Trainer got unexpected arguments {sorted(rest)}")
        if sample is None or loss is None or optim is None:
            raise TypeError("Trainer needs sample=, loss= and optim=")
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        self.seeds = check_seeds((0,) if seeds is None else seeds)
        if len(models) != len(self.seeds):
            raise InputError(
                f"{len(models)} models for {len(self.seeds)} seeds; give one model per seed."
            )
        # under `runs.resuming` (icsim reproduce --resume) a started run continues
        self.fmt, self.optim, self.run = fmt, optim, runs.resumed(run or Run())
        self.sample_fn, self.loss_fn = sample, loss
        self.record, self.log_extra, self.on_log = record, log_extra, on_log
        self.quiet = self.run.quiet
        self.vectorised = len(models) > 1 if vectorise is None else vectorise
        self.device = (
            torch.device(device) if device is not None else next(models[0].parameters()).device
        )
        self.rank, self.world_size = distributed.setup(self.device)
        if on_log is None and not self.quiet and self.rank == 0:  # no terminal: progress lines
            label = Path(self.run.dir).name if self.run.dir is not None else ""
            self.on_log = progress.Lines(self.optim.steps, label)
        if self.world_size > 1 and self.vectorised:
            raise InputError("multi-seed training runs in one process; launch it without torchrun.")
        self._dirs = self._seed_dirs()  # every rank reads checkpoints from these on resume
        self.run_dirs = self._prepare_dirs()  # the ones this process writes (rank 0 only)
        self._locks = [None] * len(self.run_dirs or [])
        if self.run.resume:  # before the logs are cut back to the checkpoint
            self._lock_all()
        if self.vectorised:
            from torch.func import stack_module_state

            self.params, self.buffers = stack_module_state(models)  # [K, ...], requiring grad
            # A weightless copy to call functionally; eval() is exact since dropout is 0 here.
            self._skeleton = copy.deepcopy(models[0]).to("meta").eval()
            self._n_params = sum(p[0].numel() for p in self.params.values())
            trainable = self.params.values()
        else:
            self.model = models[0]
            self._n_params = sum(p.numel() for p in self.model.parameters())
            trainable = self.model.parameters()
        self.optimizer = self.optim.build(trainable, self.device)
        self.rngs = [Rng(s, self.device) for s in self.seeds]
        self.step = 0
        self.histories: list[list[dict]] = [[] for _ in self.seeds]
        self._acc, self._n_acc = None, 0  # losses summed since the last log row (checkpointed)
        self.amp = amp and self.device.type == "cuda"
        if (amp or compile) and self.device.type != "cuda":
            self._notice("amp/compile requested on a CPU: skipped (they need a GPU).")
        self._forward = None
        if not self.vectorised:
            self._forward = self.model
            if self.world_size > 1:
                from torch.nn.parallel import DistributedDataParallel

                self._forward = DistributedDataParallel(self.model)
            if compile and self.device.type == "cuda":
                self._forward = torch.compile(self._forward)
        elif compile and self.device.type == "cuda":
            self._notice("compile is not used by multi-seed training yet: running eager.")
        self._run_ids = [uuid.uuid4().hex for _ in self.seeds]
        if self.run_dirs is not None and not self.run.resume:
            for k, d in enumerate(self.run_dirs):
                rundir.write_json(d / "config.json", self.describe(k))
        self._lock_all()
        if self.run.resume and self._dirs is not None:
            self.restore()

    # -- construction helpers ------------------------------------------------------------
    def _seed_dirs(self) -> list[Path] | None:
        if self.run.dir is None:
            return None
        root = Path(self.run.dir)
        return [root] if not self.vectorised else [root / f"seed_{s}" for s in self.seeds]

    def _prepare_dirs(self) -> list[Path] | None:
        if self._dirs is None or self.rank != 0:  # under torchrun rank 0 alone writes
            return None
        return [rundir.prepare(d, self.run.overwrite, self.run.resume) for d in self._dirs]

    def _lock_all(self) -> None:
        """An advisory lock per run directory: a second process resuming the same run refuses
        instead of interleaving checkpoints and logs."""
        for k, d in enumerate(self.run_dirs or []):
            if self._locks[k] is None:
                self._locks[k] = runs.lock(d)

    def _unlock_all(self) -> None:
        for k, f in enumerate(self._locks):
            if f is not None:
                f.close()  # closing the file releases the lock
                self._locks[k] = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self._unlock_all()

    def _notice(self, msg: str) -> None:
        if not self.quiet:
            print(f"icsim: {msg}", file=sys.stderr)

    # -- the preset --------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: TrainConfig, run_dir=None, **kw) -> Trainer:
        """The `icsim train` run a TrainConfig describes (one seed, or `seeds=` vectorised)."""
        return cls(cfg, run_dir, **kw)

    @classmethod
    def resume(cls, run_dir: str | Path, *, quiet=False, steps: int | None = None) -> Trainer:
        """Continue the TrainConfig run in `run_dir` from its newest intact checkpoint; a root of
        several seeds (`icsim train --seeds`) resumes as one vectorised group."""
        run_dir = Path(run_dir)
        seeds = None
        group = sorted(run_dir.glob("seed_*/config.json"))
        config_path = run_dir / "config.json"
        if not config_path.exists() and group:
            config_path = group[0]
        saved = preset.read_config(run_dir, config_path)
        if "converted_from" in saved:  # `icsim convert`: weights only, no optimiser state
            raise InputError(
                f"{run_dir} holds a model converted from {saved['converted_from']} (weights "
                "only, no optimiser state or training config), so it cannot be resumed; "
                "evaluate it (icsim eval, icsim atlas) or train a new run with icsim train."
            )
        multi = saved.get("multi_seed")
        if config_path != run_dir / "config.json" and isinstance(multi, dict):
            seeds = check_seeds(multi.get("seeds"))
        cfg = from_dict(TrainConfig, saved["train"], "config.json train")
        if steps is not None:
            cfg = replace(cfg, steps=steps)
        if seeds is not None:
            cfg = replace(cfg, seed=seeds[0])
        return Trainer(cfg, run_dir, seeds=seeds, quiet=quiet, resume=True)

    # -- bookkeeping -------------------------------------------------------------------
    def describe(self, k: int = 0) -> dict:
        """Seed k's config.json: its record, then the run's identity and provenance."""
        out = {
            **(self.record(k) if self.record else {}),
            "parameters": self._n_params,
            "seed": self.seeds[k],
            "world_size": self.world_size,  # data-parallel processes (torchrun)
            "device": provenance.device_name(self.device),
            "versions": provenance.versions(),
            "git_commit": provenance.git_commit(),
            "run_id": self._run_ids[k],
        }
        if self.vectorised:
            out["multi_seed"] = {"seeds": self.seeds, "index": k}
        return out

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    @property
    def generator(self) -> torch.Generator:
        """The first seed's batch generator on the training device."""
        return self.rngs[0].device

    @property
    def history(self) -> list[dict]:
        """The first seed's log rows."""
        return self.histories[0]

    def model_at(self, k: int) -> torch.nn.Module:
        """Seed k's model as an ordinary module (in the vectorised mode, a copy of its weights)."""
        if not self.vectorised:
            return self.model
        m = copy.deepcopy(self._skeleton).to_empty(device=self.device).train()
        state = {n: p[k].detach().clone() for n, p in {**self.params, **self.buffers}.items()}
        m.load_state_dict(state)
        return m

    def models(self) -> list[torch.nn.Module]:
        return [self.model_at(k) for k in range(self.n_models)]

    # -- the step ------------------------------------------------------------------------
    def loss(self, batch) -> torch.Tensor:
        """The (one-seed) model's loss on `batch`, in bf16 autocast when `amp` is on."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return self.loss_fn(self._forward, batch)

    def losses(self, batch) -> torch.Tensor:
        """Per-model losses [K] on a stacked batch (every tensor [K, ...]), one vmapped call."""
        from torch.func import functional_call, vmap
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def one(params, buffers, leaves):
            def forward(*args, **kwargs):
                return functional_call(self._skeleton, (params, buffers), args, kwargs)

            return self.loss_fn(forward, batches.unflatten(batch, leaves))

        # PyTorch has no vmap rule for the CPU flash-attention kernel (it would loop over the
        # models); the math kernel is made of batched matmuls and is exact.
        math_sdpa = sdpa_kernel(SDPBackend.MATH) if self.device.type == "cpu" else nullcontext()
        with math_sdpa, torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            return vmap(one)(self.params, self.buffers, batches.flatten(batch))

    def clip_gradients(self) -> None:
        """clip_grad_norm_ per model: each model's gradient norm over all its parameters."""
        if not self.vectorised:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.grad_clip)
            return
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0).sqrt()
        coef = (self.optim.grad_clip / (norms + 1e-6)).clamp(max=1.0)  # as clip_grad_norm_
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))

    def train_step(self) -> torch.Tensor:
        """One optimiser step of every model; the loss (per model [K] when vectorised), not read
        back from the device."""
        if self.vectorised:
            batch = batches.stack([self.sample_fn(self.step, rng) for rng in self.rngs])
        else:
            batch = self.sample_fn(self.step, self.rngs[0])
            batch = distributed.shard(batch, self.rank, self.world_size)
        for group in self.optimizer.param_groups:
            group["lr"] = self.optim.lr_at(self.step)
        loss = self.losses(batch) if self.vectorised else self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss.sum() if self.vectorised else loss).backward()  # model k gets exactly ∇ loss_k
        if self.optim.grad_clip > 0:
            self.clip_gradients()
        self.optimizer.step()  # the one optimiser step of icsim's training
        self.step += 1
        return loss.detach()

    # -- the loop ------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> dict:
        """Train to `optim.steps` (or stop after `stop_after` more steps, for tests). The loss
        is read back from the device only every `log_every` steps. On SIGTERM or SIGINT the
        step in flight is finished, a checkpoint written and `TrainingInterrupted` raised
        (exit code 143 or 130). Returns {"step", "loss"} (loss per seed when vectorised)."""
        from tqdm import tqdm

        steps, run = self.optim.steps, self.run
        end = steps if stop_after is None else min(steps, self.step + stop_after)
        self._lock_all()
        if not self.vectorised:
            self.model.train()
        tb = self._tensorboard()
        bar = tqdm(
            total=steps,
            initial=self.step,
            disable=self.quiet or not sys.stderr.isatty(),
            unit="step",
            dynamic_ncols=True,
        )
        t_start = t_last = time.perf_counter()
        since = 0
        # a resumed run that trains no further reports the loss it last logged
        last = [h[-1]["loss"] if h else float("nan") for h in self.histories]
        try:
            with runs.stop_on_signals() as stop:
                while self.step < end:
                    loss = self.train_step()
                    self._acc = loss if self._acc is None else self._acc + loss
                    self._n_acc += 1
                    since += 1
                    bar.update(1)
                    if self.step % run.log_every == 0 or self.step == end:
                        now = time.perf_counter()
                        last = self._log_rows(since / (now - t_last), tb)
                        t_last, since = now, 0
                        bar.set_postfix(loss=f"{sum(last) / len(last):.4f}")
                    if self.run_dirs is not None and (
                        self.step % run.checkpoint_every == 0 or self.step == steps
                    ):
                        self.save_checkpoint()
                    if stop.signum is not None:
                        self._interrupted(stop.signum)
        finally:
            progress.trained_for(time.perf_counter() - t_start)
            bar.close()
            if tb is not None:
                tb.close()
            self._unlock_all()
        if self.run_dirs is not None and self.step == steps:
            for d in self.run_dirs:
                runs.write_csv(d)
        return {"step": self.step, "loss": last if self.vectorised else last[0]}

    def _interrupted(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.run_dirs is not None:
            saved = self.save_checkpoint()
            path = saved[0].parent.parent if self.vectorised else saved
            msg = (
                f"{name}: stopped after step {self.step}, checkpoint written to {path}; "
                f"continue with --resume {self.run.dir}."
            )
        else:
            msg = f"{name}: stopped after step {self.step} (no run directory: nothing saved)."
        print(f"icsim: {msg}", file=sys.stderr, flush=True)
        raise TrainingInterrupted(msg, 128 + signum)


__all__ = [  # with the names other modules import from here
    "Run",
    "Rng",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "VECTORISABLE",
    "build_task",
    "check_seeds",
    "load_trained",
    "lr_at",
    "model_config",
    "resolve_device",
    "token_format",
]
