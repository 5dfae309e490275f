"""AdamW's implementation: the fused kernel by default on the CPU too, and a run resumes with
the implementation its checkpoint was written with, bit-identically."""

import torch
from safetensors.torch import load_file

from icsim.training import Trainer, optim
from icsim.training.optim import Optim

from .test_resume_integrity import CFG, rows


def test_fused_kernel_by_default_on_the_cpu_and_same_steps_as_the_loop():
    weights = [torch.nn.Parameter(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))]
    fused = Optim(steps=3, lr=1e-2, weight_decay=0.1).build(weights, torch.device("cpu"))
    assert fused.param_groups[0]["fused"]
    loop_weights = [torch.nn.Parameter(weights[0].detach().clone())]
    loop = torch.optim.AdamW(loop_weights, lr=1e-2, weight_decay=0.1, foreach=False)
    for step in range(3):
        for p in (weights[0], loop_weights[0]):
            p.grad = torch.full_like(p, 0.5 - step)
        fused.step()
        loop.step()
    torch.testing.assert_close(weights[0], loop_weights[0], rtol=1e-6, atol=1e-7)


def test_run_started_with_the_loop_resumes_with_the_loop_bit_identically(tmp_path, monkeypatch):
    """A checkpoint written before the fused default (per-parameter loop) keeps its kernel."""
    cfg = CFG.__class__(**{**CFG.__dict__, "steps": 8, "log_every": 2, "checkpoint_every": 4})
    with monkeypatch.context() as m:  # as before this change: no fused kernel on the CPU
        m.setattr(optim, "_fused_devices", lambda: ["cuda"])
        Trainer(cfg, tmp_path / "a", quiet=True).train()
        Trainer(cfg, tmp_path / "b", quiet=True).train(stop_after=5)  # checkpoint at 4
    resumed = Trainer.resume(tmp_path / "b", quiet=True)  # built fused, restored as the loop
    assert not resumed.optimizer.param_groups[0]["fused"]
    resumed.train()
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    for name in ("model.safetensors", "state.safetensors"):
        wa, wb = (load_file(tmp_path / x / "checkpoints/step_00000008" / name) for x in "ab")
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_fused_false_builds_the_per_parameter_loop_and_bad_values_are_refused():
    import pytest

    from icsim.errors import InputError

    weights = [torch.nn.Parameter(torch.zeros(2))]
    loop = Optim(steps=3, fused=False).build(weights, torch.device("cpu"))
    assert not loop.param_groups[0]["fused"]
    with pytest.raises(InputError, match="fused must be True or False, got 'no'"):
        Optim(steps=3, fused="no")
    cfg = CFG.__class__(**{**CFG.__dict__, "fused": False})  # TrainConfig passes it on
    assert not Optim.like(cfg).fused
