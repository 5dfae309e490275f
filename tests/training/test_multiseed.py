import json
from dataclasses import replace

import pytest
import torch

from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig, Trainer, load_trained
from icsim.training.multiseed import MultiSeedTrainer

# Curriculum, warm-up + cosine decay, weight decay and an active clip (lr large enough that the
# gradient norm exceeds 0.5), so every per-model piece of the step is exercised.
TINY = TrainConfig(
    dim=4,
    n_layer=2,
    n_head=2,
    n_embd=16,
    steps=6,
    batch_size=8,
    lr=3e-3,
    weight_decay=0.1,
    grad_clip=0.5,
    warmup_steps=2,
    schedule="cosine",
    log_every=2,
    checkpoint_every=4,
    curriculum=Curriculum(dims_start=2, dims_end=4, points_start=5, points_end=7, interval=3),
)
SEEDS = [0, 3, 11]


def alone(cfg, seed, steps=None):
    t = Trainer(replace(cfg, seed=seed), quiet=True)
    t.train(stop_after=steps)
    return t.model.state_dict()


def assert_same_weights(a: dict, b: dict, what: str):
    # atol: a single update moves a weight by ~lr = 3e-3, so 1e-5 still catches any wrong step;
    # it leaves room for the key biases, whose gradient is exactly zero in exact arithmetic
    # (softmax ignores a shift shared by every key), so Adam turns rounding noise into ~1e-6.
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=f"{what}: {name}")


@pytest.mark.parametrize(
    "token_format, model",
    [("interleaved", "transformer"), ("stacked", "transformer"), ("interleaved", "looped")],
)
def test_models_trained_together_equal_each_trained_alone(token_format, model):
    cfg = replace(TINY, token_format=token_format, model=model)
    multi = MultiSeedTrainer(cfg, SEEDS, quiet=True)
    start = [m.state_dict() for m in multi.models()]
    out = multi.train()
    assert out["step"] == cfg.steps and len(out["loss"]) == len(SEEDS)
    moved = 0.0
    for k, seed in enumerate(SEEDS):
        ref = alone(cfg, seed)
        got = multi.model(k).state_dict()
        assert_same_weights(got, ref, f"seed {seed}")
        moved = max(moved, max((got[n] - start[k][n]).abs().max().item() for n in got))
    assert moved > 1e-3  # the models really trained (the comparison is not of initial weights)
    # distinct seeds give distinct models
    read_out = multi.params["read_out.weight"]
    assert not torch.allclose(read_out[0], read_out[1])


def test_clipping_is_per_model():
    # model 0's huge gradient is scaled to norm 1; model 1's small one is left as it is
    multi = MultiSeedTrainer(replace(TINY, grad_clip=1.0), [0, 1], quiet=True)
    for p in multi.params.values():
        p.grad = torch.full_like(p, 1e-4)
        p.grad[0] = 1e3
    small = {n: p.grad[1].clone() for n, p in multi.params.items()}
    multi.clip_gradients()
    sq = torch.stack([p.grad.flatten(1).square().sum(1) for p in multi.params.values()])
    assert sq.sum(0).sqrt()[0].item() == pytest.approx(1.0, rel=1e-5)
    for n, p in multi.params.items():
        assert torch.equal(p.grad[1], small[n])


def test_run_directories_load_and_resume_like_single_runs(tmp_path):
    multi = MultiSeedTrainer(TINY, [2, 5], tmp_path, quiet=True)
    multi.train(stop_after=4)  # checkpoint at step 4
    for seed in (2, 5):
        d = tmp_path / f"seed_{seed}"
        assert json.loads((d / "config.json").read_text())["train"]["seed"] == seed
        rows = [json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [2, 4]
        model, _, cfg = load_trained(d)
        assert cfg.seed == seed
        assert_same_weights(model.state_dict(), alone(TINY, seed, steps=4), f"load seed {seed}")
        # the saved AdamW moments and prompt generator let a single Trainer carry on exactly
        resumed = Trainer.resume(d, quiet=True)
        resumed.train()
        assert_same_weights(resumed.model.state_dict(), alone(TINY, seed), f"resume seed {seed}")


def test_bad_seeds_and_models_are_refused():
    with pytest.raises(InputError, match="empty"):
        MultiSeedTrainer(TINY, [], quiet=True)
    with pytest.raises(InputError, match="distinct"):
        MultiSeedTrainer(TINY, [1, 1], quiet=True)
    with pytest.raises(InputError, match="non-negative"):
        MultiSeedTrainer(TINY, [-1], quiet=True)
    with pytest.raises(InputError, match="list of integers"):
        MultiSeedTrainer(TINY, 4, quiet=True)
    with pytest.raises(InputError, match="lstm"):
        MultiSeedTrainer(replace(TINY, model="lstm"), [0, 1], quiet=True)
