"""Training configuration: small frozen dataclasses, saved as the run's config.json."""

from __future__ import annotations

import contextlib
import contextvars
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace

from icsim import _validate as V
from icsim.errors import InputError, did_you_mean

if typing.TYPE_CHECKING:
    from icsim.training.optim import Optim


# False inside `deferred_checks`: configs are built without their checks
_checking = contextvars.ContextVar("icsim_config_checking", default=True)


@dataclass(frozen=True)
class Curriculum:
    """Garg et al. 2022's curriculum: dims 5→20 (+1 every 2000 steps), points 11→41 (+2 / 2000).

    The ends follow the run unless set: `dims_end` is the task's dim and `points_end` the
    prompt length 2·dim + 1 (Garg's 20 and 41 at d = 20); a start above such an end is lowered
    to it, so `icsim train --dim 5` trains at d = 5 with 11 points. `enabled=False` trains at
    the end values from the first step. Unused coordinates are zero.
    """

    enabled: bool = True
    """grow the active dimensions and the prompt length during training; off: the end values"""
    dims_start: int = 5
    """active dimensions at step 0 (lowered to dims_end if above it)"""
    dims_end: int | None = None
    """active dimensions at the end, at most dim (None follows dim)"""
    dims_inc: int = 1
    """dimensions added every interval"""
    points_start: int = 11
    """points per prompt at step 0 (lowered to points_end if above it)"""
    points_end: int | None = None
    """points per prompt at the end: the model's prompt length (None: 2·dim + 1)"""
    points_inc: int = 2
    """points added every interval"""
    interval: int = 2000
    """steps between curriculum increments"""

    def __post_init__(self):
        if not _checking.get():
            return
        check_types(self, prefix="curriculum.")
        for name in ("dims_start", "dims_end", "points_start", "points_end", "interval"):
            if getattr(self, name) is not None:
                V.positive_int(f"curriculum.{name}", getattr(self, name))
        V.nonnegative_int("curriculum.dims_inc", self.dims_inc)
        V.nonnegative_int("curriculum.points_inc", self.points_inc)
        self.resolved(self.dims_end or self.dims_start)  # starts must not exceed explicit ends

    def resolved(self, dim: int = 20, n_points: int | None = None) -> Curriculum:
        """This curriculum with its ends filled in for a run at `dim` (and `n_points`, default
        2·dim + 1): an end left unset follows the run and lowers a start above it."""
        ends = {"dims_end": dim, "points_end": n_points or 2 * dim + 1}
        new = {}
        for key, follow in ends.items():
            start = key.replace("_end", "_start")
            if getattr(self, key) is None:
                new[key] = follow
                new[start] = min(getattr(self, start), follow)
        out = replace(self, **new) if new else self
        if out.enabled and (out.dims_start > out.dims_end or out.points_start > out.points_end):
            raise InputError(
                "curriculum start values must not exceed end values, got dims "
                f"{out.dims_start}→{out.dims_end}, points {out.points_start}→{out.points_end}."
            )
        return out

    def at(self, step: int, dim: int = 20, n_points: int | None = None) -> tuple[int, int]:
        """(active dims, number of points) at a training step of a run at `dim` (ends left unset
        follow `dim` and `n_points`, as in `resolved`)."""
        c = self.resolved(dim, n_points)
        if not c.enabled:
            return c.dims_end, c.points_end
        k = step // c.interval
        return (
            min(c.dims_start + k * c.dims_inc, c.dims_end),
            min(c.points_start + k * c.points_inc, c.points_end),
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Defaults: Garg et al. 2022 (d = 20, 41 points, GPT-2
    12 layers / 8 heads / 256 wide, batch 64, Adam lr 1e-4, 500k steps, curriculum)."""

    task: str = "linear_regression"
    """task family to train on (`icsim list tasks -v` shows each one's parameters)"""
    dim: int = 20
    """input dimension d of the task"""
    task_params: dict[str, int | float | str] = field(default_factory=dict)
    """extra task parameters, e.g. --task-params condition_number 10"""
    token_format: str = "interleaved"
    """how a prompt becomes tokens: interleaved (x, y alternate; Garg et al.) or stacked"""
    model: str = "transformer"
    """model family: transformer, looped, lstm (`icsim list models`)"""
    n_layer: int = 12
    """number of blocks (layers)"""
    n_head: int = 8
    """attention heads per block"""
    n_embd: int = 256
    """model width (embedding size)"""
    attention: str = "softmax"
    """attention kind: softmax, linear or relu"""
    mlp: bool = True
    """an MLP after the attention of each block"""
    layer_norm: bool = True
    """LayerNorm in each block"""
    positional: bool = True
    """learned positional embedding (transformers only)"""
    read_in: bool = True
    """linear read-in; off feeds tokens as they are (n_embd = token width)"""
    steps: int = 500_000
    """training steps (optimiser updates)"""
    batch_size: int = 64
    """prompts per training step"""
    lr: float = 1e-4
    """peak learning rate of AdamW"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas (two numbers)"""
    grad_clip: float = 1.0
    """maximum gradient norm; 0 = no clipping"""
    warmup_steps: int = 0
    """steps of linear learning-rate warm-up before the schedule"""
    schedule: str = "constant"
    """learning-rate decay after warm-up: constant, cosine or linear"""
    min_lr_ratio: float = 0.1
    """final lr / peak lr for the cosine and linear schedules"""
    fused: bool = True
    """AdamW's fused kernel where the device has one (False: torch's per-parameter loop, as runs
    before 2026-12-02 used: the rounding differs, and a chaotic run's numbers with it)"""
    curriculum: Curriculum = field(default_factory=Curriculum)
    """curriculum over active dimensions and prompt length (Garg et al. 2022)"""
    seed: int = 0
    """random seed of the weights and the training prompts"""
    device: str = "cpu"
    """where to train: cpu, cuda or cuda:N"""
    amp: bool = False
    """bf16 autocast (GPU only; skipped with a notice on a CPU)"""
    compile: bool = False
    """torch.compile (GPU only; skipped with a notice on a CPU)"""
    log_every: int = 100
    """steps between rows of metrics.jsonl (the loss averaged over them) and progress lines"""
    checkpoint_every: int = 1000
    """steps between checkpoints (a killed run resumes from the newest)"""
    keep_checkpoints: int = 3
    """newest checkpoints kept on disk (older ones are deleted)"""

    def __post_init__(self):
        if not _checking.get():
            return
        check_types(self)
        V.positive_fields(
            self,
            "dim",
            "n_layer",
            "n_head",
            "n_embd",
            "steps",
            "batch_size",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
        )
        V.nonnegative_int("seed", self.seed)
        self.optim  # noqa: B018 -- builds Optim, which checks lr, betas, schedule, ...
        if self.curriculum.dims_end is not None and self.curriculum.dims_end > self.dim:
            raise InputError(
                f"curriculum.dims_end={self.curriculum.dims_end} exceeds dim={self.dim}; "
                f"set curriculum.dims_end <= {self.dim} (or leave it unset to follow dim)."
            )
        self.curriculum.resolved(self.dim)  # starts above explicit ends
        self._check_names_and_shapes()

    def _check_names_and_shapes(self) -> None:
        """Unknown task/model/format names and task parameters fail here, before a run directory
        is made, by building the task and the model's config (both cheap; no weights)."""
        import icsim.models
        import icsim.tasks

        icsim.tasks.TASKS.factory(self.task)  # unknown name -> "did you mean"
        icsim.models.MODELS.factory(self.model)
        icsim.models.FORMATS.factory(self.token_format)
        if "dim" in self.task_params:
            raise InputError("task_params must not hold 'dim': set the top-level dim instead.")
        try:
            icsim.tasks.get(self.task, dim=self.dim, **self.task_params)
        except TypeError as e:  # a task constructor refusing a value's type
            raise InputError(f"task_params for task {self.task!r}: {e}.") from None
        model_config(self)

    @property
    def n_points(self) -> int:
        """Points per prompt at the end of the curriculum (the model's prompt length)."""
        return self.curriculum.resolved(self.dim).points_end

    def active(self, step: int) -> tuple[int, int]:
        """(active dims, points per prompt) of the curriculum at a training step."""
        return self.curriculum.at(step, self.dim)

    @property
    def optim(self) -> Optim:
        """The optimiser settings of this preset."""
        from icsim.training.optim import Optim  # torch: not needed to parse `icsim train`

        return Optim.like(self)

    def to_dict(self) -> dict:
        return asdict(self)


def token_format(cfg: TrainConfig):
    from icsim.models import get_format

    return get_format(cfg.token_format, dim=cfg.dim)


def model_config(cfg: TrainConfig):
    """The ModelConfig a TrainConfig describes (learned positions sized for its prompts)."""
    from icsim.models import ModelConfig

    fmt = token_format(cfg)
    tokens = 2 * cfg.n_points if cfg.token_format == "interleaved" else cfg.n_points
    return ModelConfig(
        n_dims_in=fmt.width,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        attention=cfg.attention,
        mlp=cfg.mlp,
        layer_norm=cfg.layer_norm,
        positional=cfg.positional and cfg.model != "lstm",
        read_in=cfg.read_in,
        max_positions=max(tokens, 1),
    )


def build_task(cfg: TrainConfig):
    import icsim.tasks

    return icsim.tasks.get(cfg.task, dim=cfg.dim, **cfg.task_params)


@contextlib.contextmanager
def deferred_checks():
    """Build configs without their checks inside this block; run them afterwards with
    `checked(cfg)`. The CLI parses flags this way because its parser (tyro) would turn our
    InputError into its own error box, with no traceback even under --debug."""
    token = _checking.set(False)
    try:
        yield
    finally:
        _checking.reset(token)


def checked(cfg: TrainConfig) -> TrainConfig:
    """`cfg` rebuilt with every check (types, ranges, names) run."""
    return replace(cfg, curriculum=replace(cfg.curriculum))


def from_dict(cls, data: dict, where: str = "config", _path: str = ""):
    """Build a (nested) frozen dataclass from JSON data, rejecting unknown keys with a hint and
    wrong types by name (the dataclass's own checks then reject out-of-range values)."""
    if not isinstance(data, dict):
        raise InputError(
            f"{where}: {_path.rstrip('.') or 'the config'} must be a JSON object, "
            f"got {_short(data)} ({_json_type(data)})."
        )
    names = {f.name: f for f in fields(cls)}
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise InputError(
                f"{where} has no key {_path + str(key)!r}.{did_you_mean(key, names)} "
                f"Allowed: {', '.join(names)}."
            )
        if is_dataclass(hints[key]) and isinstance(value, dict):
            value = from_dict(hints[key], value, where, f"{_path}{key}.")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


# -- types ------------------------------------------------------------------------------------
_HINTS: dict[type, dict] = {}


def _hints(cls) -> dict:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _json_type(value) -> str:
    kinds = [(bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string")]
    for t, name in [*kinds, (dict, "an object"), (list, "a list"), (tuple, "a list")]:
        if isinstance(value, t):
            return name
    return "null" if value is None else type(value).__name__


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_types(obj, prefix: str = "") -> None:
    """Check every field of a frozen dataclass against its annotation, converting JSON forms
    (int -> float, list -> tuple, object -> nested dataclass); bool is not accepted as a number."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        fixed = _coerce(prefix + f.name, value, _hints(type(obj))[f.name])
        if fixed is not value:
            object.__setattr__(obj, f.name, fixed)


def _coerce(name: str, value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:  # `int | None`
        rest = [a for a in args if a is not type(None)]
        return value if value is None or len(rest) != 1 else _coerce(name, value, rest[0])
    if hint is bool:
        ok, expected = isinstance(value, bool), "true or false"
    elif hint is int:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif hint is float:
        ok, expected = V._is_number(value), "a number"
        if ok and isinstance(value, int):
            if abs(value) >= 2**1023:  # float() would overflow
                raise InputError(f"{name} must be a finite number, got {_short(value)}.")
            value = float(value)
    elif hint is str:
        ok, expected = isinstance(value, str), "a string"
    elif origin is tuple:
        expected = f"a list of {len(args)} numbers"
        ok = isinstance(value, (list, tuple)) and len(value) == len(args)
        if ok:
            return tuple(_coerce(f"{name}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, args)))
    elif origin is dict:
        expected = "an object with string keys"
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
    elif is_dataclass(hint):
        if isinstance(value, dict):
            return from_dict(hint, value, "TrainConfig", f"{name}.")
        ok, expected = isinstance(value, hint), f"an object of {hint.__name__} fields"
    else:  # an annotation this checker does not know: the dataclass validates it
        return value
    if not ok:
        raise InputError(f"{name} must be {expected}, got {_short(value)} ({_json_type(value)}).")
    return value


# `icsim train --preset NAME`: TrainConfig fields of a named scale (explicit flags override them).
PRESETS = {
    # minutes on 2 CPU cores (the Garg quick profile's model): d = 5 by default, 4 layers, 4
    # heads, width 64, 6000 steps of lr 1e-3 with warm-up and cosine decay, a short curriculum
    "cpu-small": dict(
        dim=5, n_layer=4, n_head=4, n_embd=64, steps=6000, lr=1e-3, warmup_steps=200,
        schedule="cosine", curriculum=Curriculum(dims_start=2, points_start=5, interval=500),
    ),
    # Garg et al. 2022: TrainConfig's defaults (GPT-2 12 layers / 8 heads / 256, d = 20, 41
    # points, batch 64, Adam 1e-4, 500k steps, the curriculum) with GPU fast paths
    "garg2022": dict(log_every=500, checkpoint_every=10_000, amp=True, compile=True),
}  # fmt: skip
SIZE_FIELDS = ("n_layer", "n_head", "n_embd", "steps", "batch_size")  # what makes a run long


def preset(name: str) -> dict:
    """The TrainConfig fields of preset `name` (an InputError naming the presets otherwise)."""
    V.choice("--preset", name, tuple(PRESETS))
    return dict(PRESETS[name])
