"""An algorithm atlas: which registered algorithm, at which step, each layer of a model matches.

Every layer's prediction comes from a read-out fitted once in closed form (`probes.fit_probes`)
or, for a hand-built construction, from its own read-out; it is compared with every registered
algorithm whose `family` is the task's (each over its class's `step_grid`, once per combination
of its `param_grid`) by Fu et al. 2024's measures (`matching.py`): similarity of errors,
similarity of induced weights, and the distance of the log prediction errors.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import icsim
from icsim import _validate as V
from icsim.analysis.evaluation import in_chunks
from icsim.analysis.matching import (
    at_grid_end,
    fit_induced_weights,
    induced_weights,
    similarity_matrix,
)
from icsim.analysis.metrics import normalised_squared_error
from icsim.analysis.probes import fit_probes, layer_predictions
from icsim.errors import InputError
from icsim.tasks.base import Problem, TaskBatch

#: how a layer's verdict is chosen (stated in every table)
CRITERIA = (
    "similarity = similarity of errors (Fu et al. 2024: cos(ŷ_layer − y, ŷ_alg − y) over a "
    "prompt's queries, mean over prompts), each column (algorithm and hyper-parameters) at its "
    "best step; columns whose distance 1 − similarity is within {resolution:.0%} of the best "
    "column's are not told apart by similarity, and among them the verdict names the one that "
    "needs the fewest steps (a closed form: 0), as Fu et al. tell Newton from GD by the steps "
    "each needs to match a layer (Newton's grow linearly with the layer, GD's exponentially); "
    "ties in steps go to the higher similarity, then to the column matching best over all "
    "layers; an exact match (distance 0) is never tied with an inexact one; '≈' when the named "
    "similarity is ≥ {close}, 'loosely like' when ≥ {loose}, else no match; a step at the end "
    "of the grid is only a lower bound (≥); the runner-up is the next column of another "
    "registered algorithm"
)
CLOSE, LOOSE, RESOLUTION = 0.99, 0.9, 0.1
# what an algorithm that does not fit the task raises when built or run (recorded, not fatal)
NOT_APPLICABLE = (InputError, NotImplementedError, TypeError, ValueError, RuntimeError)


def applicable(family: str, max_step: int | None = None) -> list[dict]:
    """Columns of the atlas: every registered algorithm whose `family` is `family`, once per
    combination of its class's `param_grid`, with its `step_grid` (closed form: step 0)."""
    reg = icsim.algorithms.ALGORITHMS
    cols = []
    for name in reg.names():
        cls = reg.factory(name)
        if getattr(cls, "family", None) != family:
            continue
        grid = getattr(cls, "param_grid", {})
        steps = _cut([0] if getattr(cls, "closed_form", False) else cls.step_grid, max_step)
        for combo in itertools.product(*grid.values()):
            params = dict(zip(grid, combo, strict=True))
            label = name + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" * bool(params))
            cols.append({"name": label, "algorithm": name, "params": params, "steps": steps})
    return cols


def _cut(steps, max_step: int | None) -> list[int]:
    return [s for s in steps if max_step is None or s <= max_step] or [0]


@dataclass
class Atlas:
    """Per layer × column: the best similarity of errors and its step, the induced weights'
    similarity and step, the error distance and step; `verdicts` one sentence per layer."""

    task: str
    columns: list[dict]
    error_cosine: list[list[float]]  # [L+1][C], best over steps
    step: list[list[int]]  # [L+1][C], the step where it is best
    at_end: list[list[bool]]
    weight_cosine: list[list[float]] | None
    weight_step: list[list[int]] | None
    error_distance: list[list[float]]  # −|log err_layer − log err_alg| at its best step
    error_step: list[list[int]]
    layer_error: list[float]  # normalised squared error of each layer's read-out
    read_out: str
    settings: dict
    skipped: dict = field(default_factory=dict)
    similarity_by_step: list = field(default_factory=list)  # [C][L+1][S]: every grid step
    verdicts: list[str] = field(default_factory=list)
    best: list[dict] = field(default_factory=list)

    @property
    def n_layers(self) -> int:
        return len(self.error_cosine)

    def to_json(self) -> dict:
        from icsim.analysis.atlas_outputs import rates

        crit = CRITERIA.format(close=CLOSE, loose=LOOSE, resolution=RESOLUTION)
        return {**self.__dict__, "criteria": crit, "rates": rates(self)}

    def write(self, out: str | Path, title: str = "") -> dict:
        """atlas.json, atlas.md and atlas.png into `out`; returns their paths."""
        from icsim.analysis.atlas_outputs import heatmap, markdown

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "atlas.json", "markdown": out / "atlas.md", "png": out / "atlas.png"}
        paths["json"].write_text(json.dumps(self.to_json(), indent=1))
        heatmap(self, paths["png"], title)
        paths["markdown"].write_text(markdown(self, title, paths["png"].name))
        return paths


def _layers_and_target(model, fmt, batch, probes):
    """(per-layer predictions [L+1, B, m], targets [B, m], n_context or None for every prefix)."""
    m = len(fmt.positions(batch.n_points))
    n_context = None if m == batch.n_points else batch.n_points - m
    return layer_predictions(model, fmt, batch, probes), fmt.targets(batch), n_context


def _trajectory(alg, batch: TaskBatch, steps: list, n_context):
    """[S, B, m]: the algorithm's predictions after each step of `steps` (`predictions_at`: one
    run per prompt length keeps only those steps; gradient descent has them in closed form)."""
    if n_context is not None:
        return alg.predictions_at(batch.split(n_context), steps)
    xs, ys = batch.xs, batch.ys
    cols = [
        alg.predictions_at(Problem(xs[:, :k], ys[:, :k], xs[:, k : k + 1]), steps)[..., 0]
        for k in range(batch.n_points)  # prompt lengths, each batched over the prompts
    ]
    return torch.stack(cols, dim=-1)


def _best(sim: torch.Tensor, steps: list):
    """(best value per layer, its step) with NaN (a diverged run) ranked last and ties to the
    earliest step."""
    sim = torch.nan_to_num(sim.double(), nan=-2.0, posinf=-2.0, neginf=-2.0)
    top = sim.max(dim=1).values
    first = (sim >= top[:, None] - 1e-9).double().argmax(dim=1)
    return top.tolist(), [steps[i] for i in first.tolist()]


@torch.no_grad()
def atlas(
    model,
    fmt,
    task,
    *,
    n_points: int,
    eval_prompts: int = 320,
    probe_prompts: int = 4096,
    weight_prompts: int = 64,
    seed: int = 0,
    device: str = "cpu",
    read_out: str = "auto",
    max_step: int | None = None,
    extra: list[dict] | None = None,
    sample=None,
    solver_threads: int | None = 1,
) -> Atlas:
    """Match every layer of `model` (token format `fmt`, trained on `task`) with every registered
    algorithm that applies to `task` (`applicable(task.name)`), each over its step grid.

    n_points: prompt length (the model's). eval_prompts: held-out prompts the measures average
    over (320, Fu et al.'s). probe_prompts: prompts the per-layer ridge read-outs are fitted on
    (4096). weight_prompts: prompts for the induced weights (each asks 4d queries after a
    context of d examples; 0 skips them). read_out: "probes", "model" (the model's own head,
    exact for constructions) or "auto" (model for a construction, else probes). max_step: cut
    every step grid there. extra: further columns (`applicable`'s shape), e.g. a construction's
    own algorithm and hyper-parameters. sample: (n_prompts, n_points, n_context, generator) ->
    TaskBatch replacing `task.sample` (e.g. a construction's normalised prompts).
    solver_threads: torch threads while the algorithms run on a CPU (1: their many small
    batched products wait at thread barriers when cores are shared — benchmarks/RESULTS.md,
    "Atlas"; None: leave the process's setting); restored afterwards.
    """
    family = getattr(task, "name", None)
    columns = applicable(family, max_step)
    have = {(c["algorithm"], json.dumps(c["params"], sort_keys=True)) for c in columns}
    columns += [
        {**e, "steps": _cut(e["steps"], max_step)}
        for e in extra or ()
        if (e["algorithm"], json.dumps(e["params"], sort_keys=True)) not in have
    ]
    if not columns:
        names = sorted(
            {getattr(icsim.algorithms.ALGORITHMS.factory(n), "family", "?")
             for n in icsim.algorithms.names()}
        )  # fmt: skip
        raise InputError(
            f"no registered algorithm applies to task {family!r}; the atlas covers tasks "
            f"{', '.join(names)} (set `family` on an algorithm class to add one)."
        )
    dtype = next(model.parameters()).dtype
    if read_out == "auto":
        read_out = "model" if getattr(model, "construction", None) is not None else "probes"
    icsim._validate.choice("read_out", read_out, ("auto", "probes", "model"))
    gen = torch.Generator(device=device)

    def draw(n, points, n_context, s):
        gen.manual_seed(seed + s)
        if sample is not None:
            return sample(n, points, n_context, gen)
        return task.sample(n, points, generator=gen, device=device, dtype=dtype)

    n_queries = len(fmt.positions(n_points))
    ctx = None if n_queries == n_points else n_points - n_queries
    clock, seconds, cpu = time.perf_counter(), {}, {}
    cpu_clock = time.process_time()

    def lap(what):  # wall and CPU seconds of each phase (the benchmark reports both)
        nonlocal clock, cpu_clock
        seconds[what] = round(time.perf_counter() - clock, 3)
        cpu[what] = round(time.process_time() - cpu_clock, 3)
        clock, cpu_clock = time.perf_counter(), time.process_time()

    probes = None
    if read_out == "probes":
        probes = fit_probes(
            model, fmt, _Sampler(draw, ctx), n_prompts=probe_prompts, n_points=n_points,
            generator=gen, device=device,
        )  # fmt: skip
    batch = draw(eval_prompts, n_points, ctx, 1)
    lap("probes")
    layers, target, n_context = _layers_and_target(model, fmt, batch, probes)
    lap("layers")
    d = batch.dim
    w_batch = w_model = None
    if weight_prompts:
        w_ctx = d if n_context is None else n_context
        w_batch = draw(weight_prompts, w_ctx + 4 * d, w_ctx, 2)
        pad = 0 if n_context is None else n_queries - 1
        w_model = _model_weights(model, fmt, probes, w_batch, w_ctx, pad)
    lap("model_induced_weights")
    res = {k: [] for k in ("ec", "st", "end", "wc", "ws", "ed", "es")}
    curves = []  # per column: similarity of errors [L+1][S] at every step of its grid
    kept, skipped = [], {}
    with _threads(solver_threads, device):
        for col in columns:
            try:
                alg = icsim.algorithms.get(col["algorithm"], **col["params"])
                traj = _trajectory(alg, batch, col["steps"], n_context).to(layers.dtype)
                w_alg = None
                if w_batch is not None:
                    preds = alg.predictions_at(w_batch.split(w_ctx), col["steps"])
                    w_alg = fit_induced_weights(w_batch.xs[:, w_ctx:], preds)
            except NOT_APPLICABLE as e:
                skipped[col["name"]] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            kept.append(col)
            sim = similarity_matrix(layers, traj, target, "error_cosine")
            curves.append(
                torch.nan_to_num(sim.double(), nan=-2.0, posinf=-2.0, neginf=-2.0).tolist()
            )
            ec, st = _best(sim, col["steps"])
            ed, es = _best(similarity_matrix(layers, traj, target, "error"), col["steps"])
            res["ec"].append(ec), res["st"].append(st), res["ed"].append(ed), res["es"].append(es)
            res["end"].append(at_grid_end(st, col["steps"]))
            if w_alg is not None:
                wsim = similarity_matrix(w_model, w_alg.to(w_model.dtype), None, "weight_cosine")
                wc, ws = _best(wsim, col["steps"])
                res["wc"].append(wc), res["ws"].append(ws)
    lap("algorithms")
    if not kept:
        raise InputError(
            f"every algorithm of task {family!r} failed on its prompts: {skipped}; "
            "check the task's parameters."
        )
    T = {k: [list(r) for r in zip(*v, strict=True)] if v else None for k, v in res.items()}
    err = normalised_squared_error(layers.double(), target.double(), d).mean((-1, -2)).tolist()
    settings = {
        "n_points": n_points, "eval_prompts": eval_prompts, "probe_prompts": probe_prompts,
        "weight_prompts": weight_prompts, "seed": seed, "dim": d, "max_step": max_step,
        "prefixes": n_context is None, "n_context": n_context, "dtype": str(dtype),
        "seconds": seconds,
        "cpu_seconds": cpu,
    }  # fmt: skip
    result = Atlas(
        family, kept, T["ec"], T["st"], T["end"], T["wc"], T["ws"], T["ed"], T["es"],
        err, read_out, settings, skipped, curves,
    )  # fmt: skip
    from icsim.analysis.atlas_outputs import verdicts

    result.best, result.verdicts = verdicts(result)
    return result


@contextlib.contextmanager
def _threads(n: int | None, device: str):
    """torch's (process-wide) thread count set to `n` on a CPU inside the block, then restored."""
    before = torch.get_num_threads()
    if n is not None and torch.device(device).type == "cpu":
        torch.set_num_threads(V.positive_int("solver_threads", n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Sampler:
    """`fit_probes` draws its prompts through `task.sample`; this routes them through `draw`."""

    def __init__(self, draw, n_context):
        self.draw, self.n_context, self.calls = draw, n_context, 0

    def sample(self, n, n_points, generator=None, device=None, dtype=None):
        self.calls += 1
        return self.draw(n, n_points, self.n_context, 100 + self.calls)


def _model_weights(model, fmt, probes, batch, n_context, rep):
    """The model's induced weights [L+1, B, d] (matching.induced_weights). A format that asks
    q > 1 queries at once gets the query `rep` = q − 1 more times (queries do not see one
    another), so the last prediction is still that query's."""
    if _shares_context(model, fmt):
        h = _queries_after_one_context(model, fmt, batch, n_context)
        preds = probes.predict(h) if probes is not None else model.head(h)[..., 0]
        return fit_induced_weights(batch.xs[:, n_context:], preds)

    def predict(bb):
        if rep:
            xs = torch.cat([bb.xs, bb.xs[:, -1:].expand(-1, rep, -1)], 1)
            ys = torch.cat([bb.ys, bb.ys[:, -1:].expand(-1, rep)], 1)
            bb = TaskBatch(xs=xs, ys=ys, task=bb.task)
        return in_chunks(lambda part: layer_predictions(model, fmt, part, probes), bb, 2048, 1)

    return induced_weights(predict, batch, n_context)


def _shares_context(model, fmt) -> bool:
    """A causal GPT-2-style `Transformer` on interleaved tokens: a query's hidden states depend
    only on the context before it and on itself, so all queries can share one context."""
    from icsim.models import Interleaved, Transformer

    return type(model) is Transformer and type(fmt) is Interleaved and model.cfg.causal


@torch.no_grad()
def _queries_after_one_context(model, fmt, batch: TaskBatch, n_context: int) -> torch.Tensor:
    """[L+1, B, Q, E]: the hidden states at each of the Q = n − n_context query tokens, each
    seeing the context and itself only, all at the position a lone query would have (2·n_context)
    — what Q copies of the prompt give (`matching.induced_weights`), for the cost of one."""
    B, n, _ = batch.xs.shape
    Q, c = n - n_context, 2 * n_context
    tokens = fmt.encode(batch).reshape(B, n, 2, -1)
    context, queries = tokens[:, :n_context].reshape(B, c, -1), tokens[:, n_context:, 0]
    # `model.embed` with every query at the position c a lone query has (the sequence may be
    # longer than max_positions: no position beyond c is used)
    h = model.read_in(torch.cat([context, queries], 1))
    if model.wpe is not None:
        h = h + model.wpe(torch.arange(c + Q, device=h.device).clamp(max=c))
    mask = torch.ones(c + Q, c + Q, dtype=torch.bool, device=h.device).tril()
    mask[c:, c:] = torch.eye(Q, dtype=torch.bool, device=h.device)  # queries see no other query
    hidden = [h]
    for block in model.blocks:
        h = block(h, mask)
        hidden.append(h)
    return torch.stack(hidden)[:, :, c:]
