"""Resume only from what this run wrote, say when it cannot, and continue exactly (issue 15:
items 5, 6, 8, 10, 11, 12, 13)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save_file

from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig, Trainer
from icsim.training import checkpoint as ckpt
from icsim.training.multiseed import MultiSeedTrainer

CFG = TrainConfig(  # the `trained` and `run` fixtures (conftest.py): checkpoints at 5, 10, 15
    dim=3, n_layer=1, n_head=1, n_embd=8, steps=15, batch_size=4, log_every=5,
    checkpoint_every=5, curriculum=Curriculum(enabled=False, dims_end=3, points_end=5),
)  # fmt: skip


def newest(run):
    return ckpt.list_checkpoints(run)[-1]


def resign(c, meta=None, state=None):
    """Rewrite a checkpoint as an attacker who knows the format would: new tensors, every
    checksum recomputed, so only the values themselves can give it away."""
    meta = json.loads((c / "meta.json").read_text()) if meta is None else meta
    if state is not None:
        save_file(state, c / "state.safetensors")
    meta["sha256"] = {n: ckpt._sha256(c / n) for n in ckpt.TENSOR_FILES}
    meta["meta_sha256"] = ckpt._meta_digest(meta)
    (c / "meta.json").write_text(json.dumps(meta))


def state_of(c):
    return load_bytes((c / "state.safetensors").read_bytes())


# -- 10: the sidecar's own checksum is mandatory, and optimizer values are checked -----------
def test_sidecar_without_its_checksum_is_corrupt(run):
    c = newest(run)
    meta = json.loads((c / "meta.json").read_text())
    del meta["meta_sha256"]
    meta["param_groups"][0]["betas"] = [5, 0.999]
    meta["param_groups"][0]["eps"] = -1
    (c / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match="meta_sha256"):
        ckpt.load(c)
    with pytest.warns(ckpt.CheckpointSkipped, match="step_00000015"):
        assert Trainer.resume(run, quiet=True).step == 10


@pytest.mark.parametrize(
    "group_change", [{"betas": [5, 0.999]}, {"eps": -1.0}, {"lr": float("nan")}, {"betas": [0.9]}]
)
def test_resigned_optimizer_settings_out_of_range_are_corrupt(run, group_change):
    c = newest(run)
    meta = json.loads((c / "meta.json").read_text())
    meta["param_groups"][0].update(group_change)
    resign(c, meta)
    with pytest.raises(ckpt.CheckpointError, match="optimizer settings out of range"):
        ckpt.load(c)
    with pytest.warns(ckpt.CheckpointSkipped):
        Trainer.resume(run, quiet=True).train()  # falls back to step 10 and trains on


def test_resigned_negative_second_moment_is_corrupt(run):
    c = newest(run)
    state = state_of(c)
    name = next(n for n in state if n.endswith(".exp_avg_sq"))
    state[name] = -state[name] - 1
    resign(c, state=state)
    with pytest.raises(ckpt.CheckpointError, match="negative optimizer state"):
        ckpt.load(c)


# -- 11: a missing piece is a clear "corrupt checkpoint" -------------------------------------
@pytest.mark.parametrize("piece", ["rng.generator", "rng.torch"])
def test_state_without_a_random_generator_is_corrupt(run, piece):
    c = newest(run)
    state = state_of(c)
    del state[piece]
    resign(c, state=state)
    with pytest.raises(ckpt.CheckpointError, match=f"corrupt.*{piece}|{piece}.*corrupt"):
        ckpt.load(c)
    with pytest.warns(ckpt.CheckpointSkipped, match=piece):
        assert Trainer.resume(run, quiet=True).step == 10


def test_optimizer_moment_of_the_wrong_shape_is_corrupt(run):
    c = newest(run)
    state = state_of(c)
    name = next(n for n in state if n.endswith(".exp_avg"))
    state[name] = torch.zeros(7)
    resign(c, state=state)
    with pytest.raises(ckpt.CheckpointError, match="shape"):
        Trainer.resume(run, quiet=True)


# -- 5: every checkpoint corrupt: said plainly, from step 0 ----------------------------------
def test_all_checkpoints_corrupt_says_training_restarts_from_step_0(run, capsys):
    for c in ckpt.list_checkpoints(run):
        (c / "model.safetensors").write_bytes(b"garbage")
    with pytest.warns(ckpt.CheckpointSkipped):
        trainer = Trainer.resume(run, quiet=True)  # even quiet: this must not pass unseen
    assert trainer.step == 0
    err = capsys.readouterr().err
    assert "corrupt" in err and "restarts from step 0" in err and err.count("\n") == 1
    assert (run / "metrics.jsonl").read_text() == ""  # the old rows would be written again


# -- 6: a checkpoint of another run is refused -----------------------------------------------
def test_checkpoint_copied_from_another_run_is_refused(run, tmp_path):
    other = tmp_path / "other"
    Trainer(CFG.__class__(**{**CFG.__dict__, "seed": 7}), other, quiet=True).train(stop_after=5)
    shutil.copytree(newest(other), run / "checkpoints" / "step_00000020")
    meta = json.loads((run / "checkpoints/step_00000020/meta.json").read_text())
    meta["step"] = 20  # renamed as a newer step of this run, re-signed
    resign(run / "checkpoints/step_00000020", meta)
    ckpt.load(run / "checkpoints/step_00000020")  # intact as a file ...
    with pytest.raises(ckpt.CheckpointError, match="belongs to another run"):
        Trainer.resume(run, quiet=True)  # ... but not this run's


def test_run_identity_is_recorded(run):
    config = json.loads((run / "config.json").read_text())
    meta = json.loads((newest(run) / "meta.json").read_text())
    assert meta["run_id"] == config["run_id"] and len(config["run_id"]) == 32
    assert len(meta["config_digest"]) == 64


# -- 8: two resumes of one run at once -------------------------------------------------------
def test_second_concurrent_resume_is_refused(run):
    first = Trainer.resume(run, quiet=True)
    with pytest.raises(InputError, match="in use by another icsim process"):
        Trainer.resume(run, quiet=True)
    first.train()  # the first one is unaffected, and lets go when it ends
    Trainer.resume(run, quiet=True)


# -- 13: log rows after a resume equal the uninterrupted run's -------------------------------
def rows(run_dir):
    out = []
    for ln in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(ln)
        row.pop("steps_per_s")
        out.append(row)
    return out


def test_log_rows_after_a_resume_equal_the_uninterrupted_runs(tmp_path):
    cfg = CFG.__class__(**{**CFG.__dict__, "steps": 24, "log_every": 4, "checkpoint_every": 6})
    Trainer(cfg, tmp_path / "a", quiet=True).train()
    Trainer(cfg, tmp_path / "b", quiet=True).train(stop_after=9)  # last checkpoint: step 6
    resumed = Trainer.resume(tmp_path / "b", quiet=True)
    assert resumed.step == 6
    resumed.train()
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    assert [r["step"] for r in rows(tmp_path / "a")] == [4, 8, 12, 16, 20, 24]


# -- 12: a multi-seed root resumes as a group, bit-identically -------------------------------
def test_multi_seed_group_resumes_bit_identically(tmp_path):
    cfg = CFG.__class__(**{**CFG.__dict__, "steps": 12, "checkpoint_every": 4, "log_every": 2})
    MultiSeedTrainer(cfg, [0, 3], tmp_path / "a", quiet=True).train()
    MultiSeedTrainer(cfg, [0, 3], tmp_path / "b", quiet=True).train(stop_after=6)
    group = Trainer.resume(tmp_path / "b", quiet=True)
    assert group.vectorised and group.seeds == [0, 3] and group.step == 4
    group.train()
    for s in (0, 3):
        a, b = (tmp_path / x / f"seed_{s}" for x in "ab")
        for name in ("model.safetensors", "state.safetensors"):
            wa = load_file(a / "checkpoints/step_00000012" / name)
            wb = load_file(b / "checkpoints/step_00000012" / name)
            assert wa.keys() == wb.keys()
            for k in wa:
                assert torch.equal(wa[k], wb[k]), (s, name, k)
        assert rows(a) == rows(b)
