"""The one training loop with its batch source and loss as arguments: losses against float64
NumPy, a loss of one's own, the vectorised seeds mode on a batch that is not a TaskBatch, and
the optimiser settings compiled from flat presets."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import icsim
from icsim.errors import InputError
from icsim.models import ModelConfig, Stacked, Transformer, get_format
from icsim.training import Optim, Run, TrainConfig, Trainer, losses


def fixed_forward(out):
    """A 'model' that returns `out` [B, T, k] whatever the tokens."""

    def forward(tokens, mask=None, return_hidden=False):
        return out

    return forward


@pytest.fixture
def batch():
    return icsim.tasks.get("linear_regression", dim=3).sample(
        4, 5, generator=torch.Generator().manual_seed(0)
    )


def test_mse_every_prefix_matches_numpy(batch):
    fmt = get_format("interleaved", dim=3)
    out = torch.randn(4, 10, 1, generator=torch.Generator().manual_seed(1))
    got = losses.mse_every_prefix(fmt)(fixed_forward(out), batch)
    pred = out.double().numpy()[:, 0::2, 0]  # read-outs at the x tokens
    want = np.mean((pred - batch.ys.double().numpy()) ** 2)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_cross_entropy_every_prefix_matches_numpy(batch):
    fmt = get_format("interleaved", dim=3)
    out = torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(2))
    labels = torch.randint(0, 3, (4, 5), generator=torch.Generator().manual_seed(3))
    got = losses.cross_entropy_every_prefix(fmt, labels=lambda b: labels)(fixed_forward(out), batch)
    z = out.double().numpy()[:, 0::2]  # [B, n, A]
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    want = -np.mean(np.take_along_axis(logp, labels.numpy()[..., None], -1))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_mse_to_target_matches_numpy(batch):
    fmt = Stacked(3, n_queries=1)
    out = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(4))
    target = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    got = losses.mse_to_target(fmt)(fixed_forward(out), losses.Targeted(batch, target))
    want = np.mean((out.double().numpy()[:, -1] - target.double().numpy()) ** 2)
    assert got.item() == pytest.approx(want, rel=1e-6)


def regression_setup(seed):
    """A small model trained to output each prompt's least-squares solution (a target computed
    outside the model, carried in a `Targeted` batch), the shape of Giannou et al.'s training."""
    task = icsim.tasks.get("linear_regression", dim=3)
    fmt = Stacked(3, n_queries=1)
    torch.manual_seed(seed)
    model = Transformer(
        ModelConfig(n_dims_in=fmt.width, n_dims_out=3, n_layer=1, n_head=1, n_embd=8)
    )

    def sample(step, rng):
        b = task.sample(8, 7, generator=rng.device)
        X, y = b.xs[:, :6].double(), b.ys[:, :6].double()
        w = torch.linalg.lstsq(X, y.unsqueeze(-1)).solution.squeeze(-1)
        return losses.Targeted(b, w.float())

    return model, fmt, sample


def test_vectorised_seeds_follow_their_one_seed_runs_on_any_batch():
    optim = Optim(steps=5, lr=3e-3, grad_clip=0.5, warmup_steps=2, schedule="cosine")
    alone = []
    for s in (0, 4):
        model, fmt, sample = regression_setup(s)
        t = Trainer(model, fmt, sample=sample, loss=losses.mse_to_target(fmt), optim=optim,
                    run=Run(log_every=1, quiet=True), seeds=(s,))  # fmt: skip
        t.train()
        alone.append((model.state_dict(), [r["loss"] for r in t.history]))
    built = [regression_setup(s) for s in (0, 4)]
    fmt, sample = built[0][1], built[0][2]
    multi = Trainer([m for m, _, _ in built], fmt, sample=sample, loss=losses.mse_to_target(fmt),
                    optim=optim, run=Run(log_every=1, quiet=True), seeds=(0, 4))  # fmt: skip
    assert multi.vectorised
    multi.train()
    for k, (weights, history) in enumerate(alone):
        got = multi.model_at(k).state_dict()
        for name in weights:
            torch.testing.assert_close(got[name], weights[name], rtol=1e-4, atol=1e-5)
        assert [r["loss"] for r in multi.histories[k]] == pytest.approx(history, rel=1e-5)


def test_log_file_and_on_log_without_a_run_directory(tmp_path):
    model, fmt, sample = regression_setup(0)
    seen = []
    t = Trainer(model, fmt, sample=sample, loss=losses.mse_to_target(fmt),
                optim=Optim(steps=6, lr=1e-3), seeds=(0,), on_log=seen.append,
                run=Run(log_every=3, log_file=tmp_path / "log.jsonl", quiet=True))  # fmt: skip
    t.train()
    rows = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6] and rows == seen == t.history
    assert list(tmp_path.iterdir()) == [tmp_path / "log.jsonl"]  # nothing else written


def test_one_optimiser_settings_type():
    cfg = TrainConfig(lr=0.5, warmup_steps=3, steps=20, schedule="linear", betas=(0.8, 0.9))
    optim = cfg.optim
    assert optim == Optim.like(cfg)
    assert (optim.lr, optim.betas, optim.schedule, optim.steps) == (0.5, (0.8, 0.9), "linear", 20)
    assert [optim.lr_at(s) for s in (0, 2, 3)] == pytest.approx([0.5 / 3, 0.5, 0.5])
    with pytest.raises(InputError, match="schedule"):
        Optim(steps=5, schedule="step")


def test_models_and_seeds_must_pair_up():
    model, fmt, sample = regression_setup(0)
    with pytest.raises(InputError, match="one model per seed"):
        Trainer(model, fmt, sample=sample, loss=losses.mse_to_target(fmt),
                optim=Optim(steps=1), seeds=(0, 1))  # fmt: skip


def test_algorithms_and_tasks_do_not_import_training():
    code = "import sys, icsim.algorithms, icsim.tasks; print('icsim.training' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"


def demo_count_setup():
    """Liu et al.'s shape: the number of demonstrations drawn every step from the seed's CPU
    stream, the prompts from its device stream; MSE on the queries."""
    task = icsim.tasks.get("linear_regression", dim=3)
    fmt = Stacked(3, n_queries=2)
    torch.manual_seed(1)
    model = Transformer(ModelConfig(n_dims_in=fmt.width, n_layer=1, n_head=1, n_embd=8,
                                    positional=False))  # fmt: skip

    def sample(step, rng):
        n = int(torch.randint(2, 6, (1,), generator=rng.cpu))
        return task.sample(4, n + 2, generator=rng.device)

    return model, fmt, sample


def test_a_run_of_ones_own_resumes_bit_identically_with_both_streams(tmp_path):
    optim = Optim(steps=12, lr=1e-3, warmup_steps=3, schedule="cosine")

    def trainer(out, **more):
        model, fmt, sample = demo_count_setup()
        run = Run(dir=out, log_every=4, checkpoint_every=5, quiet=True, **more)
        return Trainer(model, fmt, sample=sample, loss=losses.mse_every_prefix(fmt), optim=optim,
                       seeds=(5,), record=lambda k: {"what": "demo counts"}, run=run)  # fmt: skip

    whole = trainer(tmp_path / "a")
    whole.train()
    trainer(tmp_path / "b").train(stop_after=7)  # last checkpoint: step 5
    resumed = trainer(tmp_path / "b", resume=True)
    assert resumed.step == 5 and "rng.cpu" in resumed.rngs[0].state()
    resumed.train()
    for name, p in whole.model.state_dict().items():
        assert torch.equal(p, resumed.model.state_dict()[name]), name
    # the rows logged before the kill are read back: the history is the whole run's
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    meta = json.loads((tmp_path / "b/checkpoints/step_00000012/meta.json").read_text())
    assert meta["what"] == "demo counts"
