import json

import pytest
import torch
from safetensors.torch import load_file

from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig, Trainer, load_trained
from icsim.training import checkpoint as ckpt
from icsim.training.trainer import lr_at

TINY = TrainConfig(
    dim=4,
    n_layer=2,
    n_head=2,
    n_embd=16,
    steps=40,
    batch_size=8,
    lr=1e-3,
    warmup_steps=5,
    schedule="cosine",
    log_every=5,
    checkpoint_every=10,
    curriculum=Curriculum(dims_start=2, dims_end=4, points_start=5, points_end=9, interval=10),
)


def weights(run_dir, step):
    return load_file(run_dir / "checkpoints" / f"step_{step:08d}" / "model.safetensors")


def test_curriculum_schedule_matches_garg():
    c = Curriculum()  # Garg et al.: dims 5→20 +1 / 2000, points 11→41 +2 / 2000
    assert c.at(0) == (5, 11)
    assert c.at(1999) == (5, 11)
    assert c.at(2000) == (6, 13)
    assert c.at(30_000) == (20, 41)
    assert c.at(10**6) == (20, 41)
    assert Curriculum(enabled=False).at(0) == (20, 41)


def test_lr_schedule_warmup_then_decay():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, steps=110, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 9) == pytest.approx(1.0)
    assert lr_at(cfg, 10) == pytest.approx(1.0)
    assert lr_at(cfg, 110) == pytest.approx(0.1)
    assert lr_at(cfg, 60) == pytest.approx(0.55)


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    Trainer(TINY, tmp_path / "a", quiet=True).train()
    t = Trainer(TINY, tmp_path / "b", quiet=True)
    t.train(stop_after=25)  # stops between checkpoints (last one at step 20)
    resumed = Trainer.resume(tmp_path / "b", quiet=True)
    assert resumed.step == 20
    resumed.train()
    a, b = weights(tmp_path / "a", 40), weights(tmp_path / "b", 40)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the metrics log has no duplicated steps after the resume
    lines = (tmp_path / "b/metrics.jsonl").read_text().splitlines()
    steps = [json.loads(ln)["step"] for ln in lines]
    assert steps == sorted(set(steps))


def test_training_reduces_loss_and_run_dir_records_provenance(tmp_path):
    # a one-layer linear self-attention model learns in-context regression within steps
    cfg = TrainConfig(
        dim=3,
        n_layer=1,
        n_head=1,
        n_embd=4,
        token_format="stacked",
        attention="linear",
        mlp=False,
        layer_norm=False,
        steps=200,
        batch_size=128,
        lr=1e-2,
        log_every=50,
        checkpoint_every=200,
        curriculum=Curriculum(enabled=False, dims_end=3, points_end=11),
    )
    t = Trainer(cfg, tmp_path / "r", quiet=True)
    batch = t.task.sample(2048, 11, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        before = t.loss(batch).item()
    t.train()
    with torch.no_grad():
        after = t.loss(batch).item()
    assert after < 0.85 * before  # one-step GD, the best this model can do, is ~0.8 of zero
    meta = json.loads((tmp_path / "r/config.json").read_text())
    assert meta["seed"] == 0 and "torch" in meta["versions"] and meta["git_commit"]
    model, fmt, loaded_cfg = load_trained(tmp_path / "r")
    assert loaded_cfg == cfg
    with torch.no_grad():
        assert torch.equal(fmt.run(model, batch), fmt.run(t.model.eval(), batch))
    assert (tmp_path / "r/metrics.csv").exists()


def test_same_seed_same_weights(tmp_path):
    cfg = TrainConfig(**{**TINY.to_dict(), "curriculum": TINY.curriculum, "steps": 10})
    Trainer(cfg, tmp_path / "a", quiet=True).train()
    Trainer(cfg, tmp_path / "b", quiet=True).train()
    a, b = weights(tmp_path / "a", 10), weights(tmp_path / "b", 10)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_dir_is_not_overwritten(tmp_path):
    Trainer(TINY, tmp_path / "r", quiet=True).train(stop_after=10)
    before = (tmp_path / "r/config.json").read_text()
    with pytest.raises(InputError, match="--overwrite"):
        Trainer(TINY, tmp_path / "r", quiet=True)
    assert (tmp_path / "r/config.json").read_text() == before


def test_corrupt_checkpoints_are_rejected_and_resume_falls_back(tmp_path):
    Trainer(TINY, tmp_path / "r", quiet=True).train(stop_after=20)
    newest = ckpt.list_checkpoints(tmp_path / "r")[-1]
    data = bytearray((newest / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # flip one byte
    (newest / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        ckpt.load(newest)
    with pytest.warns(ckpt.CheckpointSkipped, match="step_00000020"):
        assert Trainer.resume(tmp_path / "r", quiet=True).step == 10


def test_nan_loss_stops_with_clear_message(tmp_path):
    from icsim.training import TrainingDiverged

    cfg = TrainConfig(
        **{
            **TINY.to_dict(),
            "curriculum": TINY.curriculum,
            "lr": 1e6,
            "grad_clip": 0.0,
            "steps": 200,
        }
    )
    t = Trainer(cfg, tmp_path / "r", quiet=True)
    with torch.no_grad():
        t.model.read_out.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="diverged at step"):
        t.train()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 0}, "dim"),
        ({"lr": -1.0}, "lr"),
        ({"schedule": "cosin"}, "cosine"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_config_values(kwargs, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kwargs)
