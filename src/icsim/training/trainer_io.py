"""What a `Trainer` writes and reads back, kept apart from the loop: its checkpoints (one per seed,
restored bit-identically on resume, refused when copied in from another run) and its log rows
(metrics.jsonl, averaged since the last row, checked for divergence; TensorBoard if installed).
`Trainer` inherits both; they read the trainer's state (`run`, `run_dirs`, `optimizer`, `rngs`,
`step`, the stacked weights when vectorised) and hold none of their own."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from icsim import rundir
from icsim.errors import InputError
from icsim.training import checkpoint as ckpt
from icsim.training import distributed
from icsim.training import run as runs
from icsim.training.errors import TrainingDiverged


class Checkpoints:
    """Saving and restoring a Trainer's checkpoints and trimming its logs back to them."""

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self):
        """One checkpoint per seed (the path; a list of them with several seeds)."""
        if self.run_dirs is None:
            raise InputError("this Trainer has no run directory: pass run=Run(dir=...).")
        sd = self.optimizer.state_dict()
        paths = []
        for k, run_dir in enumerate(self.run_dirs):
            tensors = {}
            for pid, state in sd["state"].items():
                for key, value in state.items():
                    t = value if torch.is_tensor(value) else torch.tensor(value)
                    if self.vectorised and key != "step":
                        t = t[k]
                    tensors[f"optim.{pid}.{key}"] = t.detach().cpu().contiguous()
            tensors.update(self.rngs[k].state())
            tensors["rng.torch"] = torch.get_rng_state()
            if self._acc is not None:
                acc = self._acc[k] if self.vectorised else self._acc
                tensors["log.acc"] = acc.detach().cpu().reshape(())
            record = self.record(k) if self.record else {}
            meta = {
                **record,
                "param_groups": sd["param_groups"],
                "log_n": self._n_acc,
                "run_id": self._run_ids[k],
                "config_digest": runs.digest(record),
            }
            paths.append(
                ckpt.save(
                    run_dir,
                    self.step,
                    self.model_at(k),
                    tensors,
                    meta,
                    keep=self.run.keep_checkpoints,
                )
            )
        return paths if self.vectorised else paths[0]

    def restore(self) -> int:
        """Load the newest checkpoint intact in every seed's directory (the newest step they all
        have); the step restored, 0 when there is none."""
        found = self._common_checkpoints()
        if found is None:
            self._truncate_logs(0)
            return 0
        models, states, metas = [], [], []
        for k, (path, (model_t, state_t, meta)) in enumerate(found):
            self._check_identity(k, path, meta)
            model = self.model_at(k)  # single mode: the model itself; vectorised: a copy
            ckpt.load_model_weights(model, model_t, str(path))
            models.append(model)
            states.append(state_t)
            metas.append(meta)
        optim_state = states[0]
        if self.vectorised:  # stack the seeds' weights and moments back into [K, ...]
            with torch.no_grad():
                for n, p in {**self.params, **self.buffers}.items():
                    p.copy_(torch.stack([m.state_dict()[n] for m in models]))
            optim_state = {
                name: (t if name.endswith(".step") else torch.stack([s[name] for s in states]))
                for name, t in states[0].items()
                if name.startswith("optim.")
            }
        ckpt.restore_optimizer(self.optimizer, optim_state, metas[0], str(found[0][0]))
        for rng, state_t in zip(self.rngs, states):
            rng.load(state_t)
        torch.set_rng_state(states[0]["rng.torch"].to(torch.uint8))
        if "log.acc" in states[0]:  # the open log interval continues where it stopped
            accs = [s["log.acc"].to(self.device) for s in states]
            self._acc = torch.stack(accs) if self.vectorised else accs[0]
        self._n_acc = int(metas[0].get("log_n", 0))
        self.step = metas[0]["step"]
        self._truncate_logs(self.step)
        self._read_histories()
        self._notice(f"resumed {self.run.dir} from step {self.step}.")
        return self.step

    def _common_checkpoints(self) -> list | None:
        """Per seed, (path, contents) of its newest intact checkpoint at the newest step every
        seed has; None (said plainly when checkpoints exist but none is intact) if there is
        none."""
        found = [ckpt.latest_intact(d) for d in self._dirs]
        if any(f is None for f in found):
            corrupt = [
                d for d, f in zip(self._dirs, found) if f is None and ckpt.list_checkpoints(d)
            ]
            if corrupt:  # the run goes back to its start: never silently
                print(
                    f"icsim: every checkpoint in {corrupt[0]} is corrupt (see the warnings "
                    "above): training restarts from step 0.",
                    file=sys.stderr,
                )
            else:
                self._notice(f"no checkpoint in {self.run.dir}: starting from step 0.")
            return None
        step = min(f[1][2]["step"] for f in found)
        found = [
            f if f[1][2]["step"] == step else ckpt.latest_intact(d, step)
            for d, f in zip(self._dirs, found)
        ]
        if any(f is None or f[1][2]["step"] != step for f in found):
            raise ckpt.CheckpointError(
                f"the seeds under {self.run.dir} have no intact checkpoint of one common step; "
                "start the group again, or resume each seed_<s> directory on its own."
            )
        return found

    def _check_identity(self, k: int, path: Path, meta: dict) -> None:
        """Refuse a checkpoint of another run (one copied in with the same shapes)."""
        theirs, ours = meta.get("run_id"), runs.saved_run_id(self._dirs[k])
        if ours is not None and theirs != ours:
            raise ckpt.CheckpointError(
                f"checkpoint {path} belongs to another run (run id {theirs}, this run {ours}): "
                "it was copied in from elsewhere. Remove it, or resume the run it came from."
            )
        # a run from before run ids keeps the id its checkpoints carry, if any
        self._run_ids[k] = ours or theirs or self._run_ids[k]

    def _truncate_logs(self, step: int) -> None:
        """Drop log rows the resumed run will write again: those after `step`, and one at `step`
        that closed a log interval early (the resumed run finishes that interval)."""
        for k in range(self.n_models):
            path = self._log_path(k)
            if path is None or not path.exists():
                continue
            keep = []
            for ln in path.read_text().splitlines():
                s = runs.logged_step(ln)
                if s < step or (s == step and (s % self.run.log_every == 0 or self._n_acc == 0)):
                    keep.append(ln)
            rundir.write_text(path, "".join(ln + "\n" for ln in keep))

    def _read_histories(self) -> None:
        """The log rows kept on resume, as if this process had logged them (callers read
        `history`, and a finished run resumed returns its last logged loss)."""
        for k in range(self.n_models):
            path = self._log_path(k)
            if path is None or not path.exists():
                continue
            rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
            self.histories[k] = [r for r in rows if "diverged" not in r]


class Logs:
    """A Trainer's log rows: one per seed every `log_every` steps, NaN/inf checked."""

    def _log_rows(self, rate: float, tb) -> list[float]:
        """Average the losses since the last row, check them, write one row per seed."""
        acc = self._acc / self._n_acc
        last = (acc if self.vectorised else distributed.mean_over_ranks(acc).reshape(1)).tolist()
        regular = self.step % self.run.log_every == 0 or self.step == self.optim.steps
        if regular:  # an early row (stop_after) leaves its interval open, as if never written
            self._acc, self._n_acc = None, 0
        self._check_finite(last)
        for k, value in enumerate(last):
            row = {"step": self.step, "loss": value, "lr": self.optim.lr_at(self.step - 1)}
            row.update(self.log_extra(self.step - 1) if self.log_extra else {})
            row["steps_per_s"] = rate
            self.histories[k].append(row)
            self._write_row(k, row)
            if self.on_log is not None:
                self.on_log(row)
        if tb is not None:
            tb.add_scalar("train/loss", last[0], self.step)
            tb.add_scalar("train/lr", self.optim.lr_at(self.step - 1), self.step)
        return last

    def _write_row(self, k: int, row: dict) -> None:
        path = self._log_path(k)
        if path is not None:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def _log_path(self, k: int) -> Path | None:
        if self.run.log_file is not None and self.rank == 0:
            return Path(self.run.log_file)
        return None if self.run_dirs is None else self.run_dirs[k] / "metrics.jsonl"

    def _check_finite(self, losses: list[float]) -> None:
        if self.vectorised:
            finite = torch.stack(
                [torch.isfinite(p).flatten(1).all(1) for p in self.params.values()]
            )
            weights_ok = finite.all(0).tolist()
        else:
            weights_ok = [all(bool(torch.isfinite(p).all()) for p in self.model.parameters())]
        bad = [
            k for k, (v, ok) in enumerate(zip(losses, weights_ok)) if not (math.isfinite(v) and ok)
        ]
        if not bad:
            return
        k = bad[0]
        where = f"the loss ({losses[k]})" if weights_ok[k] else "the weights"
        seeds = f" for seeds {[self.seeds[i] for i in bad]}" if self.vectorised else ""
        kept = ckpt.list_checkpoints(self.run_dirs[k]) if self.run_dirs else []
        for i in bad:
            self._write_row(i, {"step": self.step, "diverged": True, "loss": str(losses[i])})
        raise TrainingDiverged(
            f"training diverged at step {self.step}{seeds}: {where} became NaN/inf. "
            + (f"The last good checkpoint is {kept[-1]}. " if kept else "")
            + "Lower --lr or enable --grad-clip."
        )

    def _tensorboard(self):
        if self.run_dirs is None or self.vectorised:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional extra: icsim[tensorboard]
            return None
        return SummaryWriter(str(self.run_dirs[0] / "tensorboard"))
