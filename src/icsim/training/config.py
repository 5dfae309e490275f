"""Training configuration: small frozen dataclasses, saved as the run's config.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass

from icsim import _validate as V
from icsim.errors import InputError, did_you_mean


@dataclass(frozen=True)
class Curriculum:
    """Garg et al. 2022's curriculum: dims 5→20 (+1 every 2000 steps), points 11→41 (+2 / 2000).

    `enabled=False` trains at the end values from the first step. Unused coordinates are zero.
    """

    enabled: bool = True
    dims_start: int = 5
    dims_end: int = 20
    dims_inc: int = 1
    points_start: int = 11
    points_end: int = 41
    points_inc: int = 2
    interval: int = 2000

    def __post_init__(self):
        for name in ("dims_start", "dims_end", "points_start", "points_end", "interval"):
            V.positive_int(f"curriculum.{name}", getattr(self, name))
        V.nonnegative_int("curriculum.dims_inc", self.dims_inc)
        V.nonnegative_int("curriculum.points_inc", self.points_inc)
        if self.enabled and (
            self.dims_start > self.dims_end or self.points_start > self.points_end
        ):
            raise InputError(
                "curriculum start values must not exceed end values, got dims "
                f"{self.dims_start}→{self.dims_end}, points {self.points_start}→{self.points_end}."
            )

    def at(self, step: int) -> tuple[int, int]:
        """(active dims, number of points) at a training step."""
        if not self.enabled:
            return self.dims_end, self.points_end
        k = step // self.interval
        return (
            min(self.dims_start + k * self.dims_inc, self.dims_end),
            min(self.points_start + k * self.points_inc, self.points_end),
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. Defaults: Garg et al. 2022 (d = 20, 41 points, GPT-2
    12 layers / 8 heads / 256 wide, batch 64, Adam lr 1e-4, 500k steps, curriculum)."""

    # task
    task: str = "linear_regression"
    dim: int = 20
    task_params: dict[str, float | int | str] = field(default_factory=dict)
    token_format: str = "interleaved"
    # model
    model: str = "transformer"
    n_layer: int = 12
    n_head: int = 8
    n_embd: int = 256
    attention: str = "softmax"
    mlp: bool = True
    layer_norm: bool = True
    # optimisation
    steps: int = 500_000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine | linear (decay after warm-up)
    min_lr_ratio: float = 0.1  # final lr / lr for cosine and linear decay
    curriculum: Curriculum = field(default_factory=Curriculum)
    # run
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # bf16 autocast (GPU only; skipped with a notice on a CPU)
    compile: bool = False  # torch.compile (GPU only; skipped with a notice on a CPU)
    log_every: int = 100
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3

    def __post_init__(self):
        for name in (
            "dim",
            "n_layer",
            "n_head",
            "n_embd",
            "steps",
            "batch_size",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            V.positive_int(name, getattr(self, name))
        V.nonnegative_int("warmup_steps", self.warmup_steps)
        V.nonnegative_int("seed", self.seed)
        V.number("lr", self.lr, low=0, low_open=True)
        V.number("weight_decay", self.weight_decay, low=0)
        V.number("grad_clip", self.grad_clip, low=0)
        V.number("min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        V.choice("schedule", self.schedule, ("constant", "cosine", "linear"))
        for b in self.betas:
            V.number("betas", b, low=0, high=1, high_open=True)
        if self.curriculum.dims_end > self.dim:
            raise InputError(
                f"curriculum.dims_end={self.curriculum.dims_end} exceeds dim={self.dim}; "
                f"set curriculum.dims_end <= {self.dim}."
            )

    @property
    def n_points(self) -> int:
        return self.curriculum.points_end

    def to_dict(self) -> dict:
        return asdict(self)


def from_dict(cls, data: dict, where: str = "config"):
    """Build a (nested) frozen dataclass from JSON data, rejecting unknown keys with a hint."""
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a JSON object, got {type(data).__name__}.")
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise InputError(
                f"{where} has no key {key!r}.{did_you_mean(key, names)} "
                f"Allowed: {', '.join(names)}."
            )
        default = getattr(cls(), key) if _has_defaults(cls) else None
        if is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value, f"{where}.{key}")
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:  # a wrong type that the dataclass itself rejected
        raise InputError(f"{where}: {e}") from None


def _has_defaults(cls) -> bool:
    try:
        cls()
        return True
    except TypeError:
        return False
