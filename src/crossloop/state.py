"""A trainer's state: the Trainer's ``state_dict``/``load_state_dict``
(:class:`TrainerState`), and the schema every state is checked against before
anything of it is used.

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

from . import nn, optim
from .errors import InputError
from .nn import DTYPES

SECTIONS = ("model", "optimizer")      # canonical tensors: name -> array
# the running metric sums: the first three always, labels (integer targets counted)
# since token targets, grad_norm_sum with steps when the gradient norm is tracked,
# abs_error_sum with values (float targets counted) once float targets were seen
METRIC_SUMS = ("loss_sum", "correct", "count", "labels", "grad_norm_sum", "steps",
               "abs_error_sum", "values")


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
    native = bool(state["spec"].get("native"))
    for section in SECTIONS:
        _check_tensors(section, _field(state, section, Mapping), dtype, native)
    if not state["model"]:
        raise StateError("model holds no tensors")
    _check_slots(state)


def check_optimizer(state: Mapping[str, Any], kind: str, slots: Mapping[str, Any]) -> None:
    """Refuse a state whose optimizer is not of type ``kind`` with these ``slots``.

    A native torch optimizer holds no slots until its first step, so an empty
    ``slots`` of a native optimizer accepts the saved ones."""
    saved = state["optimizer_spec"]["type"]
    fresh_native = not slots and state["optimizer_spec"].get("native")
    if saved != kind or (set(state["optimizer"]) != set(slots) and not fresh_native):
        raise StateError(f"the state's optimizer is {saved} with {len(state['optimizer'])} state "
                         f"tensors, this trainer's is {kind} with {len(slots)}: load with "
                         "reset_optimizer=True to start the optimizer afresh")


def check_position(saved_batches: int | None, step: int, batch: int, batches: int) -> None:
    """Refuse data of ``batches`` per epoch for a position (``step``, ``batch``) saved
    at ``saved_batches`` per epoch: the resumed batch order would not be the same."""
    if saved_batches not in (None, batches) and (step or batch):
        raise StateError(f"this run trained at {saved_batches} batches per epoch (it is at "
                         f"step {step}), but the data gives {batches}: continue it with the data "
                         "and batch size it trained with")
    if batch > batches:
        raise StateError(f"the resumed position, batch {batch}, is past the end of an epoch "
                         f"of {batches} batches")


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
    if (missing or ("grad_norm_sum" in metrics) != ("steps" in metrics)
            or ("abs_error_sum" in metrics) != ("values" in metrics)):
        raise StateError(f"metrics must hold {', '.join(METRIC_SUMS[:3])} (and grad_norm_sum "
                         "with steps, abs_error_sum with values, or neither), got "
                         f"{', '.join(metrics) or 'nothing'}")
    for key, value in metrics.items():
        if key not in METRIC_SUMS:
            raise StateError(f"metrics has an unknown sum {key!r} (known: {', '.join(METRIC_SUMS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise StateError(f"metrics {key} must be a finite number, got {_short(value)}")
    for key in ("count", "correct", "labels", "steps", "values"):
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


def _check_tensors(section: str, tensors: Mapping[str, Any], dtype: str, native: bool) -> None:
    """Canonical tensors are floats of the state's dtype; a native model's keep their own
    dtypes (a float32 Adam step in a float64 model, integer counters and seeds)."""
    for name, value in tensors.items():
        if not isinstance(value, np.ndarray):
            raise StateError(f"{section} tensor {name!r} is a {type(value).__name__}, not an array")
        if native and value.dtype.kind not in "iuf":
            raise StateError(f"{section} tensor {name!r} has dtype {value.dtype}, not a number")
        if not native and value.dtype != np.dtype(dtype):
            raise StateError(f"{section} tensor {name!r} has dtype {value.dtype}; the state's "
                             f"dtype is {dtype}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise StateError(f"{section} tensor {name!r} holds NaN or infinite values")


def _check_slots(state: Mapping[str, Any]) -> None:
    """Each optimizer tensor is ``"<model tensor>.<slot>"``, a slot the saved optimizer
    keeps (torch's names), of its parameter's shape; sums of squares are >= 0 (a
    negative one would make the next update's sqrt NaN). A native optimizer's state
    keeps the framework's own names and is checked by its backend when loaded."""
    kind = state["optimizer_spec"]["type"]
    if state["optimizer_spec"].get("native"):
        return
    if kind not in optim.BY_TYPE:
        raise StateError(f"optimizer_spec type {kind!r} is not one of "
                         f"{', '.join(optim.BY_TYPE)}")
    known = optim.BY_TYPE[kind].slot_names
    for key, value in state["optimizer"].items():
        owner, _, slot = key.rpartition(".")
        if owner not in state["model"] or slot not in known:
            raise StateError(f"optimizer tensor {key!r} is not '<model tensor>.<slot>' with a "
                             f"{kind} slot ({', '.join(known)})")
        if value.shape != state["model"][owner].shape:
            raise StateError(f"optimizer tensor {key!r} has shape {value.shape}, its parameter "
                             f"{state['model'][owner].shape}")
        if slot in optim.SQUARE_SLOTS and (value < 0).any():
            raise StateError(f"optimizer tensor {key!r} is a sum of squares but holds negative "
                             "values")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class TrainerState:
    """What a :class:`~crossloop.trainer.Trainer` is at any moment, as a state dict, and
    how one is loaded back: the trainer's ``state_dict`` and ``load_state_dict``."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, on any backend.

        ``model`` and ``optimizer`` hold NumPy arrays in canonical layout;
        everything else is JSON-able: position (``step``, ``epoch``, ``batch``),
        ``history``, the running training ``metrics`` sums, what the run is
        (``spec``, ``optimizer_spec``, ``dtype``, ``seed``, ``backend``) and each
        callback's own state under its class name.
        """
        b = self.backend
        state = {
            "backend": b.name, "dtype": self.dtype, "seed": self.seed,
            "step": self.step, "epoch": self.epoch, "batch": self.batch,
            "spec": self.spec.describe(), "optimizer_spec": self.optimizer_spec.describe(),
            "history": [dict(h) for h in self.history],
            "metrics": b.metric_sums(self.train_metrics),
            "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks
                          if hasattr(c, "state_dict")},
            "settings": self.settings,
            "model": b.get_params(self.model),
            "optimizer": b.get_optimizer_state(self.optimizer, self.model),
        }
        if self._batches_per_epoch is not None:
            state["data"] = {"batches_per_epoch": self._batches_per_epoch}
        return state

    def load_state_dict(self, state: Mapping[str, Any], *, reset_optimizer: bool = False) -> None:
        """Put this trainer exactly where ``state`` (from :meth:`state_dict`, on any
        backend) left off.

        The state is checked first (:func:`crossloop.state.check_state`), then against
        this trainer: the same model spec and shapes, and the same optimizer (type and
        slots) unless ``reset_optimizer=True``, which keeps the fresh optimizer this
        trainer was built with. Tensors are cast to this run's dtype. The data ``fit``
        trains on must have as many batches per epoch as when the state was saved.
        Raises :class:`crossloop.state.StateError` naming what does not fit.
        """
        check_state(state)
        try:
            nn.check_params(self.spec.param_shapes(), dict(state["model"]))
        except ValueError as exc:
            raise StateError(str(exc)) from None
        if state["spec"] != self.spec.describe():
            raise StateError(f"the state was saved from a different {state['spec'].get('name')!r} "
                             f"model spec than this run's {self.spec.name!r}: "
                             f"{state['spec'].get('layers')} vs {self.spec.describe()['layers']}")
        b = self.backend
        if not reset_optimizer:
            check_optimizer(state, self.optimizer_spec.describe()["type"],
                            b.get_optimizer_state(self.optimizer, self.model))
        # a native run's tensors keep their own dtypes; the backend assigns them as they are
        dtype = None if state["spec"].get("native") else self.dtype
        self.model = b.set_params(self.model, _cast(state["model"], dtype))
        if not reset_optimizer:
            self.optimizer = b.set_optimizer_state(self.optimizer, self.model,
                                                   _cast(state["optimizer"], dtype), state["step"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.history = [dict(h) for h in state["history"]]
        self.settings = dict(state.get("settings") or {})
        self._batches_per_epoch = (state.get("data") or {}).get("batches_per_epoch")
        self.train_metrics = b.set_metric_sums(self.train_metrics, state["metrics"])
        self.load_callback_states(state)

    def load_callback_states(self, state: Mapping[str, Any]) -> None:
        """Give each callback its saved state, found by class name in ``state`` (a
        ``state_dict()``): done by :meth:`load_state_dict`, and for callbacks attached
        after it."""
        for callback in self.callbacks:
            saved = state["callbacks"].get(type(callback).__name__)
            if saved is not None and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(saved)

    def _check_position(self, train: Any) -> None:
        """Remember how many batches an epoch of ``train`` has, after checking that a
        resumed position fits it."""
        try:
            batches = len(train)
        except TypeError:  # a tf.data pipeline may not know
            return
        check_position(self._batches_per_epoch, self.step, self.batch, batches)
        self._batches_per_epoch = batches


def _cast(tensors: Mapping[str, np.ndarray], dtype: str | None) -> dict[str, np.ndarray]:
    """The tensors cast to ``dtype`` (None: as they are)."""
    return {name: np.asarray(value).astype(dtype or value.dtype, copy=False)
            for name, value in tensors.items()}
