"""The schema of a trainer state (:meth:`crossloop.Trainer.state_dict`), checked
before anything of it is used.

A state may come from a file someone edited, truncated or forged, so every
field is checked for its type and range, the fields against each other
(position, history, metric sums, tensors), and the tensors for a floating dtype
-- the state's own -- and finite values. What a state must fit to be loaded
into a particular trainer (its model's shapes, its data) the trainer checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InputError
from .nn import DTYPES

SECTIONS = ("model", "optimizer")      # canonical tensors: name -> array
METRIC_SUMS = ("loss_sum", "correct", "count", "grad_norm_sum", "steps")


class StateError(InputError, ValueError):
    """A trainer state is malformed or inconsistent; the message names the field."""


def check_state(state: Mapping[str, Any]) -> None:
    """Raise :class:`StateError` naming the first field that is missing, of the wrong
    type, out of range, or inconsistent with the others."""
    if not isinstance(state, Mapping):
        raise StateError(f"a trainer state is a mapping, got {type(state).__name__}")
    _field(state, "backend", str)
    dtype = _field(state, "dtype", str)
    if dtype not in DTYPES:
        raise StateError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    for name in ("seed", "step", "epoch", "batch"):
        if _field(state, name, int) < 0:
            raise StateError(f"{name} must be >= 0, got {state[name]}")
    for name in ("spec", "optimizer_spec", "callbacks"):
        _field(state, name, Mapping)
    if not all(isinstance(v, Mapping) for v in state["callbacks"].values()):
        raise StateError("callbacks must map each callback's name to its state")
    if not isinstance(state.get("settings", {}), Mapping):
        raise StateError(f"settings must be a mapping, got {_short(state['settings'])}")
    if not isinstance(state["optimizer_spec"].get("type"), str):
        raise StateError("optimizer_spec has no 'type' naming the optimizer")
    _check_history(state)
    _check_metrics(state)
    _check_data(state)
    for section in SECTIONS:
        _check_tensors(section, _field(state, section, Mapping), dtype)
    if not state["model"]:
        raise StateError("model holds no tensors")


def check_number(where: str, value: Any, *, whole: bool = False, low: float = 0,
                 optional: bool = False) -> Any:
    """``value`` if it is a finite number >= ``low`` (a whole one with ``whole``; or None
    with ``optional``), else a :class:`StateError` naming ``where``: for callbacks
    checking their own saved state."""
    if value is None and optional:
        return value
    kinds = (int,) if whole else (int, float)
    if (isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value)
            or value < low):
        wanted = "a whole number" if whole else "a finite number"
        raise StateError(f"{where} must be {wanted} >= {low:g}{' or null' if optional else ''}, "
                         f"got {_short(value)}")
    return value


def _field(state: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in state:
        raise StateError(f"the state has no {name!r}")
    value = state[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StateError(f"{name} must be {'an' if kind is int else 'a'} "
                         f"{kind.__name__}, got {type(value).__name__} {_short(value)}")
    return value


def _check_history(state: Mapping[str, Any]) -> None:
    history = _field(state, "history", list)
    if len(history) != state["epoch"]:
        raise StateError(f"epoch is {state['epoch']} but the history has {len(history)} "
                         "completed epochs")
    for i, entry in enumerate(history, 1):
        if not isinstance(entry, Mapping) or entry.get("epoch") != i:
            raise StateError(f"history entry {i} must be a mapping with epoch {i}, got "
                             f"{_short(entry)}")
        bad = [k for k, v in entry.items() if not isinstance(k, str)
               or isinstance(v, bool) or not isinstance(v, (int, float))]
        if bad:
            raise StateError(f"history entry {i} has non-numeric {bad[0]!r}")


def _check_metrics(state: Mapping[str, Any]) -> None:
    metrics = _field(state, "metrics", Mapping)
    missing = [key for key in METRIC_SUMS[:3] if key not in metrics]
    if missing or ("grad_norm_sum" in metrics) != ("steps" in metrics):
        raise StateError(f"metrics must hold {', '.join(METRIC_SUMS[:3])} (and grad_norm_sum "
                         f"with steps, or neither), got {', '.join(metrics) or 'nothing'}")
    for key, value in metrics.items():
        if key not in METRIC_SUMS:
            raise StateError(f"metrics has an unknown sum {key!r} (known: {', '.join(METRIC_SUMS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise StateError(f"metrics {key} must be a finite number, got {_short(value)}")
    for key in ("count", "correct", "steps"):
        if key in metrics and (metrics[key] < 0 or metrics[key] != int(metrics[key])):
            raise StateError(f"metrics {key} must be a whole number >= 0, got {metrics[key]}")
    counted = metrics.get("count", 0)
    if (state["batch"] == 0) != (counted == 0):  # the running sums are those of this epoch
        raise StateError(f"batch is {state['batch']} but the running metrics count {counted:g} "
                         "samples")


def _check_data(state: Mapping[str, Any]) -> None:
    """``data`` (optional) says how many batches an epoch had when the state was saved.
    ``batch`` may equal that number: the epoch's batches are done, its end not yet."""
    data = state.get("data")
    if data is None:
        return
    if not isinstance(data, Mapping):
        raise StateError(f"data must be a mapping, got {type(data).__name__}")
    per_epoch = data.get("batches_per_epoch")
    if per_epoch is None:
        return
    if isinstance(per_epoch, bool) or not isinstance(per_epoch, int) or per_epoch < 1:
        raise StateError(f"data batches_per_epoch must be an int >= 1, got {_short(per_epoch)}")
    if state["batch"] > per_epoch:
        raise StateError(f"batch {state['batch']} is past the end of an epoch of "
                         f"{per_epoch} batches")
    expected = state["epoch"] * per_epoch + state["batch"]
    if state["step"] != expected:
        raise StateError(f"step {state['step']} does not follow from epoch {state['epoch']} and "
                         f"batch {state['batch']} at {per_epoch} batches per epoch (expected "
                         f"{expected})")


def _check_tensors(section: str, tensors: Mapping[str, Any], dtype: str) -> None:
    for name, value in tensors.items():
        if not isinstance(value, np.ndarray):
            raise StateError(f"{section} tensor {name!r} is a {type(value).__name__}, not an array")
        if value.dtype != np.dtype(dtype):
            raise StateError(f"{section} tensor {name!r} has dtype {value.dtype}; the state's "
                             f"dtype is {dtype}")
        if not np.isfinite(value).all():
            raise StateError(f"{section} tensor {name!r} holds NaN or infinite values")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
