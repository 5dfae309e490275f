"""Corrupt, truncated, tampered and foreign checkpoints are rejected with a clear message; resume
and load fall back to the newest intact one (issue 8)."""

import json
import pickle
import re

import pytest
import torch
from safetensors.torch import save_file

from icsim.cli import main
from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig, Trainer, load_trained
from icsim.training import checkpoint as ckpt

CFG = TrainConfig(  # the `trained` and `run` fixtures (conftest.py): checkpoints at 5, 10, 15
    dim=3, n_layer=1, n_head=1, n_embd=8, steps=15, batch_size=4, log_every=5,
    checkpoint_every=5, curriculum=Curriculum(enabled=False, dims_end=3, points_end=5),
)  # fmt: skip


def step_dir(run, step):
    return run / "checkpoints" / f"step_{step:08d}"


def reseal(c):
    """Recompute every checksum in meta.json: what a tamperer who knows the format would do, so
    the checks behind the checksums are exercised too."""
    meta = json.loads((c / "meta.json").read_text())
    meta["sha256"] = {n: ckpt._sha256(c / n) for n in ckpt.TENSOR_FILES}
    meta["meta_sha256"] = ckpt._meta_digest(meta)
    (c / "meta.json").write_text(json.dumps(meta))


class Boom:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def truncate(c, tmp_path):
    data = (c / "model.safetensors").read_bytes()
    (c / "model.safetensors").write_bytes(data[: len(data) // 2])


def flip_tensor_byte(c, tmp_path):
    data = bytearray((c / "state.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (c / "state.safetensors").write_bytes(bytes(data))


def flip_meta_digit(c, tmp_path):
    # still valid JSON, the tensor checksums untouched: only the sidecar's own checksum sees it
    text = (c / "meta.json").read_text()
    assert '"n_layer": 1' in text
    (c / "meta.json").write_text(text.replace('"n_layer": 1', '"n_layer": 7', 1))


def truncate_meta(c, tmp_path):
    text = (c / "meta.json").read_text()
    (c / "meta.json").write_text(text[: len(text) // 2])


def missing_sidecar(c, tmp_path):
    (c / "meta.json").unlink()


def missing_tensor_file(c, tmp_path):
    (c / "state.safetensors").unlink()


def sidecar_without_checksums(c, tmp_path):
    meta = json.loads((c / "meta.json").read_text())
    del meta["sha256"], meta["meta_sha256"]
    (c / "meta.json").write_text(json.dumps(meta))


def pickle_renamed(c, tmp_path):
    (c / "model.safetensors").write_bytes(pickle.dumps({"w": Boom(tmp_path / "PWNED")}))


def pickle_renamed_and_resealed(c, tmp_path):
    pickle_renamed(c, tmp_path)
    reseal(c)


def torch_save_renamed_and_resealed(c, tmp_path):
    torch.save({"read_out.weight": torch.zeros(1, 8)}, c / "model.safetensors")
    reseal(c)


def step_renamed(c, tmp_path):
    # a checkpoint moved under another step's name
    c.rename(c.with_name("step_00000016"))


CORRUPTIONS = {
    truncate: "model.safetensors.*SHA-256",
    flip_tensor_byte: "state.safetensors.*SHA-256",
    flip_meta_digit: "meta.json.*own SHA-256",
    truncate_meta: "not valid JSON",
    missing_sidecar: "no meta.json",
    missing_tensor_file: "no readable state.safetensors",
    sidecar_without_checksums: "without SHA-256",
    pickle_renamed: "model.safetensors.*SHA-256",
    pickle_renamed_and_resealed: "not valid safetensors",
    torch_save_renamed_and_resealed: "not valid safetensors",
    step_renamed: "records step 15",
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_corrupt_newest_is_rejected_and_resume_falls_back(run, tmp_path, corrupt):
    good = ckpt.load(step_dir(run, 15))[0]  # a copy: load_file would map the file we corrupt
    corrupt(step_dir(run, 15), tmp_path)
    newest = ckpt.list_checkpoints(run)[-1]
    with pytest.raises(ckpt.CheckpointError, match=CORRUPTIONS[corrupt]) as err:
        ckpt.load(newest)
    assert isinstance(err.value, InputError)  # the CLI prints it as one line, exit 2
    assert str(newest) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "PWNED").exists()  # nothing was unpickled

    with pytest.warns(ckpt.CheckpointSkipped, match=newest.name):
        model, _, _ = load_trained(run)
    ten = ckpt.load(step_dir(run, 10))[0]
    assert all(torch.equal(v, ten[k]) for k, v in model.state_dict().items())

    with pytest.warns(ckpt.CheckpointSkipped):
        trainer = Trainer.resume(run, quiet=True)
    assert trainer.step == 10
    trainer.train()  # redoes steps 11..15 and replaces the broken step 15
    again = ckpt.load(step_dir(run, 15))[0]
    assert all(torch.equal(good[k], again[k]) for k in good)  # bit for bit, as before
    assert not (tmp_path / "PWNED").exists()


def test_resume_through_the_cli_falls_back(run, capsys):
    flip_tensor_byte(step_dir(run, 15), None)
    with pytest.warns(ckpt.CheckpointSkipped):
        assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["step"] == 15
    ckpt.load(step_dir(run, 15))  # intact again


def test_no_intact_checkpoint_is_one_clear_error(run, capsys):
    for c in ckpt.list_checkpoints(run):
        truncate(c, None)
    with pytest.warns(ckpt.CheckpointSkipped), pytest.raises(InputError, match="no intact"):
        load_trained(run)
    with pytest.warns(ckpt.CheckpointSkipped):
        assert main(["eval", str(run), "--prompts", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icsim: error:") and "no intact checkpoint" in err
    assert "Traceback" not in err


def test_wrong_shape_is_named_with_both_shapes(run, capsys):
    # a well-formed checkpoint of another model (read-out of width 9, not 8): every checksum
    # holds, so the mismatch is caught where the weights meet the model, by name and shape
    c = step_dir(run, 15)
    tensors = dict(ckpt.load(c)[0])
    tensors["read_out.weight"] = torch.zeros(1, 9)
    save_file(tensors, c / "model.safetensors")
    reseal(c)
    ckpt.load(c)  # intact as a file
    match = r"'read_out.weight' has shape \(1, 9\), the model expects \(1, 8\)"
    with pytest.raises(ckpt.CheckpointError, match=match):
        load_trained(run)
    with pytest.raises(ckpt.CheckpointError, match=match):
        Trainer.resume(run, quiet=True)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "read_out.weight" in err and "Traceback" not in err and err.count("\n") == 1
    # a missing and an extra weight are named too
    model = Trainer(CFG, quiet=True).model
    del tensors["read_out.weight"]
    with pytest.raises(ckpt.CheckpointError, match="'read_out.weight' has shape missing"):
        ckpt.load_model_weights(model, tensors, "x")
    tensors = {**model.state_dict(), "extra.weight": torch.zeros(1)}
    with pytest.raises(ckpt.CheckpointError, match="unexpected weights.*extra.weight"):
        ckpt.load_model_weights(model, tensors, "x")


def test_kill_during_save_leaves_previous_complete_and_is_cleaned_up(run, monkeypatch):
    # a process killed between writing the tensors and publishing the directory
    trainer = Trainer.resume(run, quiet=True, steps=25)
    calls = []

    def dies_on_second_file(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # not an OSError: nothing is cleaned up, as after SIGKILL
        save_file(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", dies_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.undo()
    root = run / "checkpoints"
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp_")]  # the debris
    assert [c.name for c in ckpt.list_checkpoints(run)] == [f"step_{s:08d}" for s in (5, 10, 15)]
    found, _ = ckpt.latest_intact(run)
    assert found == step_dir(run, 15)
    trainer = Trainer.resume(run, quiet=True, steps=25)
    trainer.train()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # debris removed
    assert [c.name for c in ckpt.list_checkpoints(run)] == [f"step_{s:08d}" for s in (15, 20, 25)]


def test_nan_weights_are_never_saved(run):
    from icsim.training import TrainingDiverged

    trainer = Trainer.resume(run, quiet=True)
    before = (step_dir(run, 15) / "model.safetensors").read_bytes()
    with torch.no_grad():
        trainer.model.read_out.bias.fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match="read_out.bias.*step_00000015"):
        trainer.save_checkpoint()
    assert (step_dir(run, 15) / "model.safetensors").read_bytes() == before
    ckpt.load(step_dir(run, 15))


def test_checkpoints_are_never_unpickled():
    # acceptance: `grep -rn "torch.load\|pickle" src/` finds nothing that loads a user file
    from pathlib import Path

    import icsim

    src = Path(icsim.__file__).parent
    hits = [
        f"{p.relative_to(src)}:{i}"
        for p in src.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "torch.load" in line or "pickle" in line
    ]
    # checkpoint.py: only its docstring, saying nothing is unpickled; gpt2_import.py reads Garg
    # et al.'s state.pt, which torch.load may open only with weights_only=True (no objects)
    allowed = {"training/checkpoint.py", "models/gpt2_import.py"}
    assert {h.split(":")[0] for h in hits} <= allowed, hits
    text = (src / "training/checkpoint.py").read_text()
    assert "import pickle" not in text and "torch.load(" not in text
    calls = re.findall(r"torch\.load\(([^)]*)\)", (src / "models/gpt2_import.py").read_text())
    assert calls and all("weights_only=True" in c for c in calls), calls
