"""Cross-backend parity: train one experiment on two backends step by step and
compare them after every step.

Both backends start from the same initial weights (drawn by crossloop in NumPy)
and see the same batches. Each step runs the loop phases one by one --
``set_learning_rate``, ``gradients``, ``canonical_gradients``,
``apply_gradients``, ``get_params`` -- so after every step crossloop can compare
the loss, the global gradient norm, every gradient and every weight tensor in
canonical layout (:mod:`crossloop.parity.report` says against what).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import losses as losses_lib
from .. import nn, optim
from ..arguments import check_data, check_seed
from ..backend import Backend
from ..data import Batches
from ..errors import InputError
from ..registry import get_backend
from .report import ParityReport, StepRecord, Tolerance

Batch = tuple[np.ndarray, np.ndarray]


class ParityError(InputError, ValueError):
    """A parity run was asked for something it cannot compare."""


@dataclass
class _Observed:
    """One backend's step: loss and logits before the update, canonical gradients,
    canonical weights after it."""
    loss: float
    logits: np.ndarray
    grads: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]


@dataclass
class _Run:
    """One backend's side of the comparison: its model and optimizer."""
    backend: Backend
    model: Any
    optimizer: Any

    def step(self, lr: float, loss: losses_lib.Loss, x: np.ndarray, y: np.ndarray) -> _Observed:
        """One optimizer step through the phases, observed at every phase boundary."""
        b = self.backend
        self.optimizer = b.set_learning_rate(self.optimizer, lr)
        value, logits, grads = b.gradients(self.model, loss, b.to_device(x), b.to_device(y))
        canonical = b.canonical_gradients(self.model, grads)
        self.optimizer, self.model = b.apply_gradients(self.optimizer, self.model, grads)
        return _Observed(float(b.to_numpy(value)), b.to_numpy(logits), canonical,
                         b.get_params(self.model))

    def follow(self, leader: _Run, weights: Mapping[str, np.ndarray], steps_done: int) -> None:
        """Take the leader's weights (canonical, buffers included) and optimizer
        state, so that the next step starts from the very same state on both."""
        state = leader.backend.get_optimizer_state(leader.optimizer, leader.model)
        self.model = self.backend.set_params(self.model, weights)
        self.optimizer = self.backend.set_optimizer_state(self.optimizer, self.model, state,
                                                          steps_done)


def _compare(step: int, lr: float, a: _Observed, b: _Observed) -> StepRecord:
    return StepRecord(step, float(lr), [a.loss, b.loss],
                      [_global_norm(a.grads), _global_norm(b.grads)], _max_abs(a.logits, b.logits),
                      {name: _max_abs(a.grads[name], b.grads[name]) for name in a.grads},
                      {name: _max_abs(a.weights[name], b.weights[name]) for name in a.weights})


def run_parity(spec: nn.Sequential, optimizer: optim.Optimizer,
               data: Batches | Iterable[Batch], *, steps: int,
               backends: Sequence[str | Backend] = ("torch", "tensorflow"),
               dtype: str = "float64", loss: str | losses_lib.Loss = "cross_entropy",
               seed: int = 0, init: str = "torch",
               params: Mapping[str, np.ndarray] | None = None,
               tolerance: Tolerance | None = None, device: str = "cpu",
               lockstep: bool = False, config: Mapping[str, Any] | None = None) -> ParityReport:
    """Train ``spec`` with ``optimizer`` for ``steps`` steps on two backends and
    compare them after every step.

    ``data`` is a :class:`crossloop.data.Batches` (its epochs are used back to
    back) or any iterable of ``(x, y)`` NumPy batches, x in canonical NCHW.
    Inputs are cast to ``dtype``. ``backends`` are two names or backend objects.
    Initial weights are ``params`` or drawn from ``seed`` with ``init``.
    ``tolerance`` defaults to :meth:`Tolerance.default` for the dtype; the run
    always completes, and ``report.failure`` names the first step and tensor
    over tolerance. TF32 is switched off on both backends during the run.

    ``lockstep=True`` copies the first backend's weights (running statistics
    included) and optimizer state into the second after every step, so each step
    starts from one state and the report shows what a single step adds.
    Free-running (the default) shows how the differences grow; where training
    amplifies rounding (float32 through BatchNorm, RMSprop's first steps),
    lockstep still tells a formula difference from rounding. ``config`` adds
    JSON-able notes to the report.
    """
    if len(backends) != 2:
        raise ParityError(f"parity compares exactly two backends, got {list(backends)}")
    if steps < 1:
        raise ParityError(f"steps must be >= 1, got {steps}")
    _check_deterministic(spec)
    seed = check_seed(seed)
    tolerance = tolerance or Tolerance.default(dtype)
    loss_spec = losses_lib.get(loss)
    pair = [get_backend(b, device=device) if isinstance(b, str) else b for b in backends]
    if params is None:
        params = nn.init_params(spec, seed, init=init, dtype=dtype)
    params = {k: np.asarray(v, dtype) for k, v in params.items()}
    notes = {"model": spec.describe(), "optimizer": optimizer.describe(),
             "loss": type(loss_spec).__name__, "seed": seed, "init": init, "steps": steps,
             "devices": [b.device for b in pair], **(config or {})}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for b in pair:
            stack.enter_context(b.no_tf32())
        for b in pair:
            b.seed(seed)
        runs = []
        for b in pair:
            model = b.build_model(spec, params, dtype)
            runs.append(_Run(b, model, b.build_optimizer(optimizer, model)))
        records, first = [], None
        if isinstance(data, Batches):
            _check_fits(spec, loss_spec, data)
        for step, (x, y) in enumerate(_take(data, steps)):
            x, y = _cast(x, dtype), _cast(y, dtype)
            if not isinstance(data, Batches):  # each batch, checked as Batches of itself
                _check_fits(spec, loss_spec, Batches(x, y, len(y), shuffle=False, dtype=dtype))
            first = x if first is None else first
            lr = optimizer.lr(step)
            a, b = (run.step(lr, loss_spec, x, y) for run in runs)
            records.append(_compare(step, lr, a, b))
            if lockstep:
                runs[1].follow(runs[0], a.weights, step + 1)
        same = {"initial": _forward_pair(spec, params, first, pair, dtype),
                "final": _forward_pair(spec, a.weights, x, pair, dtype)}
    return ParityReport((pair[0].name, pair[1].name), dtype, tolerance, notes, records,
                        {k: _max_abs(*logits) for k, logits in same.items()},
                        time.perf_counter() - started, lockstep,
                        {k: _max_abs(logits[0], 0.0) for k, logits in same.items()})


def forward_diff(spec: nn.Sequential, params: Mapping[str, np.ndarray], x: np.ndarray,
                 backends: Sequence[Backend], dtype: str = "float64") -> float:
    """Max abs difference of the logits two backends compute for the same weights
    and inputs (inference mode), each on a freshly built model."""
    return _max_abs(*_forward_pair(spec, params, x, backends, dtype))


def _forward_pair(spec: nn.Sequential, params: Mapping[str, np.ndarray], x: np.ndarray,
                  backends: Sequence[Backend], dtype: str) -> list[np.ndarray]:
    """The logits each backend computes for ``params`` and ``x`` (inference mode)."""
    logits = []
    for b in backends:
        model = b.build_model(spec, params, dtype)
        logits.append(b.to_numpy(b.forward(model, b.to_device(_cast(x, dtype)), training=False)))
    return logits


def _check_deterministic(spec: nn.Sequential) -> None:
    for path, layer in spec.leaves():
        if isinstance(layer, nn.Dropout) and layer.p > 0:
            raise ParityError(
                f"layer {path} is Dropout(p={layer.p}): dropout masks come from each framework's own "
                "RNG, so the backends cannot agree; use p=0 for a parity run "
                "(nn.without_dropout(spec), crossloop parity --no-dropout; see "
                "docs/framework-differences.md)")


def _check_fits(spec: nn.Sequential, loss: losses_lib.Loss, data: Batches) -> None:
    """Trainer's data check (:func:`crossloop.arguments.check_data`) as a ParityError,
    in the batches' own float dtype: the run casts them to its dtype."""
    try:
        check_data(spec, loss, data, str(data.dtype))
    except ValueError as exc:
        raise ParityError(str(exc)) from None


def _take(data: Batches | Iterable[Batch], steps: int) -> Iterator[Batch]:
    """``steps`` batches from ``data``, epochs back to back for a Batches."""
    batches = (data if not isinstance(data, Batches)
               else (batch for epoch in range(steps) for batch in data.epoch(epoch)))
    count = 0
    for batch in batches:
        if count == steps:
            return
        yield batch
        count += 1
    if count < steps:
        raise ParityError(f"the data ran out after {count} batches; the parity run needs {steps}")


def _cast(a: Any, dtype: str) -> np.ndarray:
    """Floats to the run's dtype (contiguous), integer labels unchanged."""
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype) if a.dtype.kind == "f" else a


def _max_abs(a: np.ndarray, b: np.ndarray | float) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def _global_norm(grads: Mapping[str, np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))
