"""Static shapes for compiled training: prompts padded to the curriculum's last length with the
padding masked out of the loss, so torch.compile traces once across curriculum stages and the
loss (and gradients) equal the eager, unpadded step's. Dynamo's tracing is what recompiles on a
new shape, so a counting backend (no Inductor code generation) measures it in seconds on a CPU."""

from dataclasses import replace

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from icsim.training import Curriculum, TrainConfig, batches, preset
from icsim.training.losses import mse_every_prefix

CFG = TrainConfig(
    dim=3, n_layer=1, n_head=2, n_embd=8, steps=4, batch_size=4, compile=True,
    curriculum=Curriculum(dims_start=2, dims_end=3, points_start=3, points_end=5, interval=2),
)  # fmt: skip


def setup():
    kwargs, task, mc = preset.arguments(replace(CFG, device="cpu"))
    return kwargs["model"], kwargs["fmt"], task, mc


def stage_batches(task):
    g = torch.Generator().manual_seed(0)
    out = []
    for step in (0, 2):  # two curriculum stages: 3 then 5 points, 2 then 3 active dims
        dims, points = CFG.curriculum.at(step)
        out.append(task.sample(4, points, generator=g, active_dims=dims))
    assert [b.n_points for b in out] == [3, 5]
    return out


def compiled_step(model, loss, batch, counter):
    model.zero_grad()
    value = loss(torch.compile(model, backend=counter), batch)
    value.backward()
    return value.detach(), [p.grad.clone() for p in model.parameters()]


def test_padded_curriculum_compiles_once_and_matches_eager():
    model, fmt, task, _ = setup()
    loss = mse_every_prefix(fmt)
    stages = stage_batches(task)
    torch._dynamo.reset()
    counter = CompileCounter()
    for batch in stages:
        padded = batches.pad_points(batch, CFG.curriculum.points_end)
        value, grads = compiled_step(model, loss, padded, counter)
        model.zero_grad()
        eager = loss(model, batch)  # what an uncompiled run computes, unpadded
        eager.backward()
        torch.testing.assert_close(value, eager.detach(), rtol=1e-5, atol=1e-7)
        for g, p in zip(grads, model.parameters(), strict=True):
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6)
    assert counter.frame_count == 1  # one trace for both stages


def test_unpadded_curriculum_retraces_at_the_next_stage():
    """The control: without padding the second stage's shape makes dynamo trace again."""
    model, fmt, task, _ = setup()
    torch._dynamo.reset()
    counter = CompileCounter()
    for batch in stage_batches(task):
        compiled_step(model, mse_every_prefix(fmt), batch, counter)
    assert counter.frame_count == 2


@pytest.mark.parametrize(
    "change, device, padded",
    [({}, "cuda", True), ({}, "cpu", False), ({"compile": False}, "cuda", False),
     ({"token_format": "stacked"}, "cuda", False),
     ({"curriculum": replace(CFG.curriculum, enabled=False)}, "cuda", False)],
)  # fmt: skip
def test_padding_only_where_compile_runs_and_it_is_exact(change, device, padded):
    cfg = replace(CFG, **change)
    from icsim.training.config import model_config, token_format

    got = preset.static_points(cfg, token_format(cfg), model_config(cfg), torch.device(device))
    assert got == (CFG.curriculum.points_end if padded else None)


def test_trainer_steps_on_padded_batches_equal_the_unpadded_run(monkeypatch):
    from icsim.training import Trainer

    def losses():
        t = Trainer(replace(CFG, device="cpu", compile=False), quiet=True)
        return torch.stack([t.train_step() for _ in range(CFG.steps)])  # both stages

    plain = losses()
    monkeypatch.setattr(preset, "static_points", lambda cfg, *a: cfg.curriculum.points_end)
    padded = losses()
    torch.testing.assert_close(padded, plain, rtol=1e-5, atol=1e-7)
