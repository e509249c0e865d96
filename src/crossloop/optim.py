"""Optimizer specs and learning-rate schedules: one formula each, on every backend.

The formulas are those documented for ``torch.optim``; the TensorFlow backend
implements them rather than Keras's defaults (see docs/framework-differences.md).
A schedule is a pure function of the optimizer step, evaluated by crossloop
before each step and written into the native optimizer, so both backends see
the same learning rate at the same step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

# Global-norm clipping: coef = max_norm / (total_norm + CLIP_EPS), clamped to 1.
CLIP_EPS = 1e-6


class _Described:
    """``describe()`` for frozen dataclass specs: a JSON-able ``{"type": ..., field: value}``."""

    def describe(self) -> dict[str, Any]:
        """The spec as JSON-able data (nested specs described too), stored beside
        checkpoints and parity reports so a file says how it was trained."""
        return {"type": type(self).__name__,
                **{f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}}


def _json(value: Any) -> Any:
    if isinstance(value, _Described):
        return value.describe()
    return list(value) if isinstance(value, tuple) else value


def _number(owner: str, name: str, value: float, low: float, *, strict: bool = False,
            high: float | None = None) -> None:
    """Raise ValueError unless ``value`` is a finite number >= ``low`` (> with ``strict``)
    and < ``high``: NaN and infinity are never a valid hyperparameter."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if strict else value >= low) and (high is None or value < high))
    if not ok:
        bound = f"{'>' if strict else '>='} {low:g}" + (f" and < {high:g}" if high else "")
        raise ValueError(f"{owner} {name} must be a finite number {bound}, got {value!r}")


def _steps(owner: str, name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner} {name} must be an int >= {low}, got {value!r}")


# -- schedules ------------------------------------------------------------------

@dataclass(frozen=True)
class Constant(_Described):
    """lr(step) = lr."""
    lr: float

    def __post_init__(self) -> None:
        _number("Constant", "lr", self.lr, 0, strict=True)

    def __call__(self, step: int) -> float:
        return self.lr


class _WarmupThenDecay(_Described):
    """A linear warmup from 0 to ``lr`` over ``warmup_steps``, then a decay, done at
    ``total_steps`` (held there after), to the floor named by ``_floor``."""
    _floor: str

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _number(owner, "lr", self.lr, 0, strict=True)
        _number(owner, self._floor, getattr(self, self._floor), 0)
        _steps(owner, "warmup_steps", self.warmup_steps, 0)
        _steps(owner, "total_steps", self.total_steps, 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        return self._decay(min(1.0, (step - self.warmup_steps) / span))

    def _decay(self, done: float) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Warmup(_WarmupThenDecay):
    """Linear warmup from 0 to ``lr`` over ``warmup_steps``, then linear decay to
    ``end_lr`` at ``total_steps`` (held there after)."""
    lr: float
    warmup_steps: int
    total_steps: int
    end_lr: float = 0.0
    _floor = "end_lr"

    def _decay(self, done: float) -> float:
        return self.lr + (self.end_lr - self.lr) * done


@dataclass(frozen=True)
class Cosine(_WarmupThenDecay):
    """Optional linear warmup, then cosine decay from ``lr`` to ``min_lr`` at
    ``total_steps`` (held there after)."""
    lr: float
    total_steps: int
    warmup_steps: int = 0
    min_lr: float = 0.0
    _floor = "min_lr"

    def _decay(self, done: float) -> float:
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * done))


@dataclass(frozen=True)
class Step(_Described):
    """lr * gamma ** (step // step_size), as torch's StepLR stepped per optimizer step."""
    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _number("Step", "lr", self.lr, 0, strict=True)
        _steps("Step", "step_size", self.step_size, 1)
        _number("Step", "gamma", self.gamma, 0, strict=True)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


Schedule = Constant | Warmup | Cosine | Step
SCHEDULES = {"constant": Constant, "warmup": Warmup, "cosine": Cosine, "step": Step}


def as_schedule(lr: float | Schedule) -> Schedule:
    """A float means a constant learning rate."""
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        _number("learning", "rate", lr, 0, strict=True)
        return Constant(float(lr))
    if not callable(lr):
        raise TypeError(f"lr must be a float or a crossloop.optim schedule, got {lr!r}")
    return lr


# -- optimizers -----------------------------------------------------------------

@dataclass(frozen=True)
class SGD(_Described):
    """torch.optim.SGD: g += wd*p; buf = mu*buf + g; d = g + mu*buf if nesterov else buf;
    p -= lr*d. ``clip_norm`` clips the global gradient norm first."""
    lr: float | Schedule = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        _check(self)
        if self.nesterov and self.momentum <= 0:
            raise ValueError("SGD(nesterov=True) needs momentum > 0")


@dataclass(frozen=True)
class Adam(_Described):
    """torch.optim.Adam: L2 weight decay added to the gradient; eps added to
    sqrt of the bias-corrected second moment."""
    lr: float | Schedule = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float | None = None

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled decay p -= lr*wd*p before the update
    (no L2 in the gradient), default weight_decay 0.01."""
    weight_decay: float = 0.01


Optimizer = SGD | Adam | AdamW
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def _check(spec: Optimizer) -> None:
    """The checks every optimizer spec shares: a schedule, finite hyperparameters."""
    owner = type(spec).__name__
    object.__setattr__(spec, "lr", as_schedule(spec.lr))
    _number(owner, "weight_decay", spec.weight_decay, 0)
    if spec.clip_norm is not None:
        _number(owner, "clip_norm", spec.clip_norm, 0, strict=True)
    for name in ("momentum", "eps"):
        if hasattr(spec, name):
            _number(owner, name, getattr(spec, name), 0, strict=name == "eps")
    if hasattr(spec, "betas"):
        object.__setattr__(spec, "betas", tuple(spec.betas))
        if len(spec.betas) != 2:
            raise ValueError(f"{owner} betas must be two numbers, got {spec.betas}")
        for beta in spec.betas:
            _number(owner, "betas", beta, 0, high=1)


def slots(spec: Optimizer) -> tuple[str, ...]:
    """Per-parameter state an optimizer keeps, by torch's names (used in checkpoints)."""
    if isinstance(spec, SGD):
        return ("momentum_buffer",) if spec.momentum else ()
    return ("exp_avg", "exp_avg_sq")


def optimizer(name: str, lr: float | Schedule, **kwargs) -> Optimizer:
    """An optimizer spec by name (sgd, adam, adamw)."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}") from None
    return cls(lr=lr, **kwargs)
