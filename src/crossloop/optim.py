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
import sys
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

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


class UnlikelySettingWarning(UserWarning):
    """A setting torch accepts but that is probably not what was meant (a momentum of 1
    or more, a warmup as long as the schedule); ``crossloop train`` prints it as a line."""


def _unlikely(note: str) -> None:
    """Warn, pointing at the line that made the spec (past this module and dataclass code)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and (frame.f_code.co_filename == __file__
                                 or frame.f_code.co_filename.startswith("<")):
        frame, level = frame.f_back, level + 1
    warnings.warn(note, UnlikelySettingWarning, stacklevel=level)


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
        if self.warmup_steps >= self.total_steps:
            _unlikely(f"{owner} warmup_steps {self.warmup_steps} is not shorter than the "
                      f"schedule (total_steps {self.total_steps}): the learning rate never "
                      f"reaches lr {self.lr:g}")

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
# A spec's fields are torch's constructor arguments (plus crossloop's ``clip_norm``),
# with torch's names and defaults, so a spec reads like the torch call it stands for.

# Each hyperparameter's range, wherever a spec has it: (low, strictly above low, below
# this or None). NaN and infinity are refused for all.
_RANGES = {"weight_decay": (0, False, None), "momentum": (0, False, None), "eps": (0, True, None),
           "alpha": (0, False, 1), "rho": (0, False, 1), "lr_decay": (0, False, None),
           "initial_accumulator_value": (0, False, None)}
_FLAGS = ("nesterov", "centered")

# Optimizer slots that accumulate squares: never negative (a negative one would make
# the sqrt in the update NaN), which the checkpoint schema checks.
SQUARE_SLOTS = ("exp_avg_sq", "square_avg", "sum", "acc_delta")


class _OptimizerSpec(_Described):
    """What every optimizer spec shares: checks on construction, and ``slot_names``,
    every per-parameter state tensor the optimizer may keep, by torch's names."""
    slot_names: ClassVar[tuple[str, ...]]

    def __post_init__(self) -> None:
        owner = type(self).__name__
        object.__setattr__(self, "lr", as_schedule(self.lr))
        if self.clip_norm is not None:
            _number(owner, "clip_norm", self.clip_norm, 0, strict=True)
        for f in dataclasses.fields(self):
            if f.name in _RANGES:
                low, strict, high = _RANGES[f.name]
                _number(owner, f.name, getattr(self, f.name), low, strict=strict, high=high)
            elif f.name in _FLAGS and not isinstance(getattr(self, f.name), bool):
                raise ValueError(f"{owner} {f.name} must be True or False, "
                                 f"got {getattr(self, f.name)!r}")
        if getattr(self, "momentum", 0) >= 1:
            _unlikely(f"{owner} momentum {self.momentum:g} is 1 or more: the updates grow "
                      "without bound (torch allows it; use momentum < 1)")


@dataclass(frozen=True)
class SGD(_OptimizerSpec):
    """torch.optim.SGD: g += wd*p; buf = mu*buf + g; d = g + mu*buf if nesterov else buf;
    p -= lr*d. ``clip_norm`` clips the global gradient norm first."""
    lr: float | Schedule = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    clip_norm: float | None = None
    slot_names = ("momentum_buffer",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nesterov and self.momentum <= 0:
            raise ValueError("SGD(nesterov=True) needs momentum > 0")


@dataclass(frozen=True)
class Adam(_OptimizerSpec):
    """torch.optim.Adam: L2 weight decay added to the gradient; eps added to
    sqrt of the bias-corrected second moment."""
    lr: float | Schedule = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float | None = None
    slot_names = ("exp_avg", "exp_avg_sq")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "betas", tuple(self.betas))
        if len(self.betas) != 2:
            raise ValueError(f"{type(self).__name__} betas must be two numbers, got {self.betas}")
        for beta in self.betas:
            _number(type(self).__name__, "betas", beta, 0, high=1)


@dataclass(frozen=True)
class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled decay p -= lr*wd*p before the update
    (no L2 in the gradient), default weight_decay 0.01."""
    weight_decay: float = 0.01


@dataclass(frozen=True)
class RMSprop(_OptimizerSpec):
    """torch.optim.RMSprop: g += wd*p; v = alpha*v + (1-alpha)*g^2; centered: a =
    alpha*a + (1-alpha)*g and v - a^2 in place of v; d = g / (sqrt(v) + eps) (eps
    outside the sqrt); buf = mu*buf + d, p -= lr*buf with momentum, else p -= lr*d.
    (Keras: rho 0.9, eps 1e-7 inside the sqrt, lr inside the momentum buffer.)"""
    lr: float | Schedule = 1e-2
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    clip_norm: float | None = None
    slot_names = ("square_avg", "momentum_buffer", "grad_avg")


@dataclass(frozen=True)
class Adagrad(_OptimizerSpec):
    """torch.optim.Adagrad: g += wd*p; sum += g^2 (from ``initial_accumulator_value``,
    0); p -= lr / (1 + (t-1)*lr_decay) * g / (sqrt(sum) + eps) at step t.
    (Keras: accumulator from 0.1, eps 1e-7 inside the sqrt, no lr_decay.)"""
    lr: float | Schedule = 1e-2
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    clip_norm: float | None = None
    slot_names = ("sum",)


@dataclass(frozen=True)
class Adadelta(_OptimizerSpec):
    """torch.optim.Adadelta: g += wd*p; v = rho*v + (1-rho)*g^2;
    d = sqrt(u + eps) / sqrt(v + eps) * g; u = rho*u + (1-rho)*d^2; p -= lr*d.
    (Keras: lr 0.001, rho 0.95, eps 1e-7.)"""
    lr: float | Schedule = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    weight_decay: float = 0.0
    clip_norm: float | None = None
    slot_names = ("square_avg", "acc_delta")


Optimizer = SGD | Adam | AdamW | RMSprop | Adagrad | Adadelta
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
              "adadelta": Adadelta}
BY_TYPE = {cls.__name__: cls for cls in OPTIMIZERS.values()}  # as ``describe()`` names them


def slots(spec: Optimizer) -> tuple[str, ...]:
    """Per-parameter state ``spec`` keeps, by torch's names (used in checkpoints): a
    momentum buffer only with momentum, a gradient average only when centered."""
    kept = {"momentum_buffer": getattr(spec, "momentum", 0) > 0,
            "grad_avg": getattr(spec, "centered", False)}
    return tuple(slot for slot in spec.slot_names if kept.get(slot, True))


def optimizer(name: str, lr: float | Schedule, **kwargs) -> Optimizer:
    """An optimizer spec by name (sgd, adam, adamw, rmsprop, adagrad, adadelta)."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}") from None
    return cls(lr=lr, **kwargs)
