"""Fuzzing the config paths (issue 8): every invalid config, through `from_dict`, `TrainConfig`
and `icsim train`, ends in one InputError / exit 2 that names the field and the bad value, with
no traceback and no run directory left behind; arbitrary JSON never escapes as another error."""

import contextlib
import io
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from icsim.cli import main
from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig, from_dict

BASE = TrainConfig(
    dim=3, n_layer=1, n_head=1, n_embd=8, steps=5, batch_size=4, log_every=5,
    curriculum=Curriculum(enabled=False, dims_end=3, points_end=5),
).to_dict()  # fmt: skip
FAST = settings(max_examples=60, deadline=None)

# -- what each field accepts --------------------------------------------------------------------
POSITIVE = ["dim", "n_layer", "n_head", "n_embd", "steps", "batch_size", "log_every",
            "checkpoint_every", "keep_checkpoints"] + [
    f"curriculum.{n}" for n in ("dims_start", "dims_end", "points_start", "points_end", "interval")
]  # fmt: skip
OPTIONAL = ["curriculum.dims_end", "curriculum.points_end"]  # None: follow dim (2·dim + 1)
NONNEGATIVE = ["warmup_steps", "seed", "curriculum.dims_inc", "curriculum.points_inc"]
FLOATS = ["lr", "weight_decay", "grad_clip", "min_lr_ratio"]
BOOLS = [
    "mlp",
    "layer_norm",
    "positional",
    "read_in",
    "amp",
    "compile",
    "fused",
    "curriculum.enabled",
]
NAMES = {  # string fields with a closed set of values
    "task": ["linear_regression", "logistic_regression", "relu_network_regression",
             "sparse_linear_regression", "sparse_recovery"],
    "model": ["transformer", "looped", "lstm", "ewml_transformer"],
    "token_format": ["interleaved", "stacked"],
    "attention": ["softmax", "linear", "relu"],
    "schedule": ["constant", "cosine", "linear"],
}  # fmt: skip
STRINGS = [*NAMES, "device"]


def test_field_lists_cover_the_config():
    # a new TrainConfig field must be added to the fuzzing above
    covered = {*POSITIVE, *NONNEGATIVE, *FLOATS, *BOOLS, *STRINGS, "betas", "task_params"}
    top = {f.name for f in fields(TrainConfig)} - {"curriculum"}
    nested = {f"curriculum.{f.name}" for f in fields(Curriculum)}
    assert covered == top | nested


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)
not_int = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
not_number = st.one_of(
    st.booleans(), st.text(max_size=8), st.none(), st.lists(st.floats(allow_nan=False), max_size=2)
)
not_bool = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=8), st.none())
not_str = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.lists(st.text(max_size=3), max_size=2))  # fmt: skip
not_object = st.one_of(st.lists(st.integers(), max_size=2), st.text(max_size=8), st.integers(),
                       st.floats(allow_nan=False), st.booleans(), st.none())  # fmt: skip
bad_betas = st.one_of(
    not_object.filter(lambda v: not isinstance(v, list)),
    st.lists(st.floats(0, 0.99), max_size=4).filter(lambda v: len(v) != 2),
    st.tuples(st.floats(0, 0.99), not_number).map(list),
)
out_of_range_float = {
    "lr": st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan)),
    "weight_decay": st.one_of(st.floats(max_value=-1e-300), st.just(math.inf)),
    "grad_clip": st.one_of(st.floats(max_value=-1e-300), st.just(-math.inf)),
    "min_lr_ratio": st.one_of(
        st.floats(min_value=1.0, exclude_min=True), st.floats(max_value=-1e-300)
    ),
}


@st.composite
def invalid(draw):
    """(config dict, dotted field, bad value, what kind of mistake) with exactly one mistake."""
    kind = draw(st.sampled_from(["type", "range", "name", "key"]))
    if kind == "type":
        field = draw(
            st.sampled_from(
                [
                    *POSITIVE,
                    *NONNEGATIVE,
                    *FLOATS,
                    *BOOLS,
                    *STRINGS,
                    "betas",
                    "task_params",
                    "curriculum",
                ]
            )
        )
        if field in OPTIONAL:
            value = draw(not_int.filter(lambda v: v is not None))
        elif field in POSITIVE or field in NONNEGATIVE:
            value = draw(not_int)
        elif field in FLOATS:
            value = draw(not_number)
        elif field in BOOLS:
            value = draw(not_bool)
        elif field in STRINGS:
            value = draw(not_str)
        elif field == "betas":
            value = draw(bad_betas)
        else:
            value = draw(not_object)
    elif kind == "range":
        field = draw(st.sampled_from([*POSITIVE, *NONNEGATIVE, *FLOATS, "betas"]))
        if field in POSITIVE:
            value = draw(st.integers(max_value=0))
        elif field in NONNEGATIVE:
            value = draw(st.integers(max_value=-1))
        elif field == "betas":
            bad = draw(st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-300)))
            value = draw(st.permutations([0.9, bad]))
        else:
            value = draw(out_of_range_float[field])
    elif kind == "name":
        field = draw(st.sampled_from(list(NAMES)))
        value = draw(st.text(max_size=12).filter(lambda v: v not in NAMES[field]))
    else:
        where = draw(st.sampled_from(["", "curriculum."]))
        known = {f.name for f in fields(Curriculum if where else TrainConfig)}
        key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in known))
        field, value = where + key, draw(json_scalars)
    data = json.loads(json.dumps(BASE))
    nested = field.startswith("curriculum.")
    (data["curriculum"] if nested else data)[field.removeprefix("curriculum.")] = value
    return data, field, value, kind


def check_message(msg: str, field: str, value, kind: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg
    if kind == "key":
        assert repr(field) in msg and "Allowed:" in msg
    elif kind == "name":
        assert repr(value) in msg and "Allowed:" in msg or "must be one of" in msg
    else:
        name = field.removeprefix("curriculum.") if field == "curriculum.enabled" else field
        assert name in msg
        shown = repr(value)
        assert shown[:40] in msg or (isinstance(value, list) and "betas" in msg), (msg, shown)


@FAST
@given(invalid())
def test_invalid_config_dict_is_one_clear_input_error(case):
    data, field, value, kind = case
    with pytest.raises(InputError) as err:
        from_dict(TrainConfig, data, "cfg.json")
    msg = str(err.value)
    assert msg.startswith("cfg.json")
    check_message(msg, field, value, kind)


@FAST
@given(invalid().filter(lambda case: case[3] != "key"))
def test_invalid_keyword_arguments_are_one_clear_input_error(case):
    # the Python API: TrainConfig(**kwargs), the nested curriculum as a dict
    data, field, value, kind = case
    with pytest.raises(InputError) as err:
        TrainConfig(**data)
    check_message(str(err.value), field, value, kind)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in fields(TrainConfig)]), json_values,
                       max_size=4) | json_values)  # fmt: skip
def test_arbitrary_json_is_a_config_or_an_input_error(data):
    """Anything JSON can hold, on the real keys or not: a config, or an InputError, nothing else."""
    try:
        cfg = from_dict(TrainConfig, data, "cfg.json")
    except InputError as e:
        assert "\n" not in str(e)
    else:
        assert isinstance(cfg, TrainConfig) and isinstance(data, dict)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid())
def test_cli_rejects_invalid_config_files_with_one_line_and_no_run_dir(case):
    data, field, value, kind = case
    with tempfile.TemporaryDirectory() as tmp:
        config, out = Path(tmp) / "cfg.json", Path(tmp) / "run"
        config.write_text(json.dumps(data))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["train", "--config", str(config), "--out", str(out), "--quiet"])
        assert code == 2
        assert err.getvalue().startswith(f"icsim: error: {config}")
        assert err.getvalue().count("\n") == 1
        check_message(err.getvalue().strip(), field, value, kind)
        assert not out.exists()


def test_bool_is_not_an_int_and_json_forms_are_converted():
    with pytest.raises(InputError, match=r"dim must be an integer, got True \(a boolean\)"):
        from_dict(TrainConfig, {**BASE, "dim": True})
    with pytest.raises(InputError, match=r"lr must be a number, got False \(a boolean\)"):
        from_dict(TrainConfig, {**BASE, "lr": False})
    with pytest.raises(InputError, match=r"mlp must be true or false, got 1 \(an integer\)"):
        from_dict(TrainConfig, {**BASE, "mlp": 1})
    with pytest.raises(InputError, match=r"lr must be a finite number, got 1000000"):
        from_dict(TrainConfig, {**BASE, "lr": 10**400})
    with pytest.raises(InputError, match="task_params must not hold 'dim'"):
        from_dict(TrainConfig, {**BASE, "task_params": {"dim": 3}})
    with pytest.raises(InputError, match="has no parameter 'noise'. Did you mean 'noise_std'"):
        from_dict(TrainConfig, {**BASE, "task_params": {"noise": 0.1}})
    with pytest.raises(InputError, match="has no key 'curriculum.intervall'. Did you mean"):
        from_dict(TrainConfig, {**BASE, "curriculum": {"intervall": 3}})
    cfg = from_dict(TrainConfig, {**BASE, "lr": 1, "betas": [0.5, 0.9]})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.betas == (0.5, 0.9)
    assert from_dict(TrainConfig, json.loads(json.dumps(BASE))) == TrainConfig(**BASE)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "icsim.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--config", "{tmp}/bad.json"], "lr must be a number, got 'fast' (a string)"),
        (["train", "--config", "{tmp}/yaml.json"], "is not valid JSON"),
        (["train", "--config", "{tmp}/missing.json"], "cannot read config file"),
        (["train", "--model", "transfomer"], "Did you mean 'transformer'"),
        (["train", "--keep-checkpoints", "0"], "keep_checkpoints must be a positive integer"),
        (["train", "--seeds", "0"], "--seeds must be >= 1"),
        (["construct", "gd", "--params", "{{bad"], "--params is not valid JSON"),
        (["construct", "gd", "--params", "[1]"], "--params must be a JSON object"),
        (["construct", "gd", "--params", '{{"dtype": "float16"}}'], "pass it as --dtype"),
    ],
)
def test_cli_bad_flags_and_files(tmp_path, capsys, argv, needle):
    (tmp_path / "bad.json").write_text('{"n_layer": 2, "lr": "fast"}')
    # YAML with a code-running tag: not JSON, so it is refused, and nothing runs
    (tmp_path / "yaml.json").write_text(f"!!python/object/apply:os.mkdir ['{tmp_path}/x']")
    argv = [a.format(tmp=tmp_path) for a in argv]
    out = tmp_path / "run"
    extra = ["--out", str(out), "--quiet"] if argv[0] == "train" else []
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icsim: error:") and err.count("\n") == 1, err
    assert needle in err
    assert not out.exists() and not (tmp_path / "x").exists()


def test_cli_flag_that_does_not_parse(tmp_path, capsys):
    # the parser's own message (it names the flag and the expected type), exit 2
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--dim", "three", "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2 and "--dim" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["trian"])
    assert exit_.value.code == 2 and "invalid choice: 'trian'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_process_one_line_or_traceback_with_debug(tmp_path):
    # two real processes (each costs seconds): what a user sees, exit code included
    (tmp_path / "bad.json").write_text('{"n_layer": true}')
    r = run_cli("train", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr == (
        f"icsim: error: {tmp_path}/bad.json: n_layer must be an integer, got True (a boolean).\n"
    )
    r = run_cli("train", "--dim", "0", "--debug", "--out", str(tmp_path / "run"))
    assert "Traceback" in r.stderr and "InputError: dim must be a positive" in r.stderr
    assert not (tmp_path / "run").exists()


# -- the sweep spec (issue 15 item 17) -----------------------------------------------------------
spec_values = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"out": st.one_of(st.just("x"), json_scalars)},
        optional={
            "base": st.one_of(st.just(BASE), json_values),
            "grid": st.dictionaries(
                st.sampled_from(["lr", "seed", "dim", "dim.x", "curriculum.enabled", "", "a..b"])
                | st.text(max_size=6),
                st.lists(json_scalars, max_size=3) | json_scalars,
                max_size=2,
            )
            | json_values,
            "retries": json_scalars,
            "cpus_per_run": json_scalars,
        },
    ),
)


@settings(max_examples=150, deadline=None)
@given(spec_values)
@example({"out": "\x00"})  # once found by CI: a NUL byte reached Path.resolve
def test_arbitrary_sweep_specs_are_a_spec_or_one_input_error(spec):
    """Any JSON as a sweep spec: checked whole (every grid point's config), or one InputError."""
    from icsim.sweep import check_spec

    try:
        check_spec(spec)
    except InputError as e:
        assert "\n" not in str(e)
