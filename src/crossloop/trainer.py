"""fit / evaluate, written once against the backend protocol.

A :class:`Trainer` holds one run's state (backend, model, optimizer, step,
epoch) and fires named events that callbacks hook into:

    on_fit_start, on_epoch_start, on_batch_end, on_epoch_end(logs),
    on_interrupt, on_fit_end

SIGINT (Ctrl-C) and SIGTERM during ``fit`` finish the current step, fire
``on_interrupt`` (where the checkpoint callback saves) and raise
:class:`Interrupted`, so a run stopped at any point can resume exactly. A
data-parallel backend (:mod:`crossloop.distributed`) has ``agree_on_signal``,
called after every step, so all its processes stop after the same one.
:meth:`Trainer.state_dict` is everything that resuming needs, in canonical
layout; :mod:`crossloop.checkpoint` only serializes it.

The hot path is one ``backend.train_step`` per batch; metrics stay on the
device and are read once per epoch. Batches are made, and moved to the
device, ``prefetch`` batches ahead in a background thread.

``fit`` and ``evaluate`` take crossloop :class:`~crossloop.data.Batches` (the
same batches on every backend) or a framework's own pipeline -- a torch
``DataLoader`` or ``Dataset``, a ``tf.data.Dataset`` -- converted batch by
batch at the boundary (:mod:`crossloop.data.native`; no parity promise there).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping
from contextlib import closing
from typing import Any

import numpy as np

from . import losses, metrics, native, nn
from . import optim as optim_lib
from .arguments import check_data, check_finite, check_model, check_seed, check_whole
from .backend import Backend
from .callbacks.base import Callback
from .data.batches import as_canonical
from .data.native import BatchSource, as_batch_source
from .data.prefetch import prefetch
from .registry import get_backend
from .signals import stop_on_signals
from .state import TrainerState


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after a whole step; callbacks have saved."""

    def __init__(self, signal_name: str, step: int):
        super().__init__(f"{signal_name} at step {step}")
        self.signal_name, self.step = signal_name, step


class Trainer(TrainerState):
    """One training run: the model spec built on a backend, its optimizer and position.

    In place of a spec, ``spec`` may be a native ``torch.nn.Module`` or
    ``keras.Model`` (:mod:`crossloop.native`): the backend follows from its type,
    ``dtype`` from its parameters, and ``optimizer`` may be a crossloop spec or
    the framework's optimizer instance; ``loss`` may be a native loss callable.
    ``backend`` is a name (``"torch"``, ``"tensorflow"``; default from
    ``$CROSSLOOP_BACKEND``) or a backend object from :func:`crossloop.get_backend`.
    Initial parameters are drawn by crossloop from ``seed`` unless ``params``
    are given, so every backend starts from the same weights.
    ``track_grad_norm=True`` adds the mean global gradient norm (before
    clipping) to each epoch's logs as ``grad_norm``, at the cost of one norm per step.
    ``prefetch`` is how many batches are made ahead in a background thread (0: none).
    """

    def __init__(self, spec: nn.Sequential | Any, optimizer: optim_lib.Optimizer | Any, *,
                 backend: str | Backend | None = None, device: str = "auto",
                 loss: str | losses.Loss | Any = "cross_entropy", dtype: str | None = None,
                 seed: int = 0, init: str = "torch",
                 params: Mapping[str, np.ndarray] | None = None,
                 callbacks: Iterable[Callback] = (), track_grad_norm: bool = False,
                 prefetch: int = 2, **backend_options: Any):
        check_model(spec)
        seed = check_seed(seed)
        if params is not None:
            check_finite(params)
        if backend is None and native.is_native(spec):
            backend = native.framework_of(spec)
        self.backend = (backend if backend is not None and not isinstance(backend, str)
                        else get_backend(backend, device=device, **backend_options))
        self.seed, self.prefetch = seed, prefetch
        native_loss = callable(loss) and not isinstance(loss, type)   # a function, not a class
        self.loss = native.NativeLoss(loss) if native_loss else losses.get(loss)
        self.backend.seed(seed)
        if native.is_native(spec):
            self.model, self.spec, self.dtype = native.adopt_model(self.backend, spec, dtype, params)
        else:
            self.spec, self.dtype = spec, dtype or "float32"
            if params is None:
                params = nn.init_params(spec, seed, init=init, dtype=self.dtype)
            self.model = self.backend.build_model(spec, params, self.dtype)
        self.optimizer_spec = native.optimizer_spec(self.backend, optimizer)
        self.optimizer = self.backend.build_optimizer(self.optimizer_spec, self.model)
        self.train_metrics = self.backend.metrics(grad_norm=track_grad_norm)
        self.eval_metrics = self.backend.metrics()
        self.callbacks = list(callbacks)
        self.step = 0          # optimizer steps taken
        self.epoch = 0         # epochs completed
        self.batch = 0         # batches done in the current epoch
        self.lr = self.optimizer_spec.lr(0)
        self.history: list[dict[str, float]] = []
        # JSON-able settings of the run this trainer belongs to, kept in its state
        # (crossloop train stores its Experiment here, so a resume can compare)
        self.settings: dict[str, Any] = {}
        self.stop_reason: str | None = None     # why fit is stopping early, if it is
        self.interrupted: str | None = None     # the signal that stopped fit, if any
        self._signal: str | None = None          # the signal received, if any
        self._error: Exception | None = None    # raised by fit once callbacks have ended
        self._batches_per_epoch: int | None = None   # of the data being (or last) trained on

    # -- training -------------------------------------------------------------
    def fit(self, train: Any, test: Any = None, *, epochs: int = 1,
            batch_size: int | None = None) -> list[dict[str, float]]:
        """Train until ``epochs`` epochs are done (counting any already done);
        evaluate on ``test`` after each. Returns the per-epoch history.

        ``train`` and ``test`` are crossloop Batches or native pipelines (see the
        module doc); ``batch_size`` batches a map-style dataset (a torch
        ``Dataset``) in crossloop's seeded order.
        """
        epochs = check_whole("epochs", epochs, 1)
        if self.epoch >= epochs:
            warnings.warn(f"fit(epochs={epochs}) has nothing to do: this trainer has done "
                          f"{self.epoch} epochs, and epochs counts them all (a resumed run ends "
                          f"where it was headed); pass epochs={self.epoch + epochs} for "
                          f"{epochs} more", stacklevel=2)
        train = self._source(train, batch_size, shuffle=True)
        test = None if test is None else self._source(test, batch_size, shuffle=False)
        self._check_position(train)
        self.stop_reason, self.interrupted, self._signal, self._error = None, None, None, None
        self._emit("on_fit_start")
        with stop_on_signals(self._on_signal):
            while self.epoch < epochs and not self.stopping:
                logs = self.train_epoch(train)
                if logs is None:  # stopped mid-epoch
                    break
                if test is not None:
                    logs.update({f"test_{k}": v for k, v in self.evaluate(test).items()})
                self.history.append(logs)
                self._emit("on_epoch_end", logs)
        if self.interrupted:
            self._emit("on_interrupt")
            raise Interrupted(self.interrupted, self.step)
        self._emit("on_fit_end")
        if self._error is not None:
            raise self._error
        return self.history

    def stop(self, reason: str, *, error: Exception | None = None) -> None:
        """Stop training after the current step: how a callback ends a run.

        ``reason`` says why (kept in :attr:`stop_reason`); with ``error``, ``fit``
        raises it once every callback has seen ``on_fit_end``.
        """
        if self.stop_reason is None:
            self.stop_reason = reason
        if error is not None and self._error is None:
            self._error = error

    @property
    def stopping(self) -> bool:
        """Whether training stops after the current step."""
        return self.stop_reason is not None

    def train_epoch(self, train: Any) -> dict[str, float] | None:
        """One pass over ``train`` (from the current batch when resuming). Returns
        the epoch's logs, or None if training stopped before the epoch ended (the
        running metrics are then kept, so a resumed epoch reports exactly)."""
        train = self._source(train, None, shuffle=True)
        self._emit("on_epoch_start")
        started, samples, start = time.perf_counter(), 0, self.batch  # this pass only
        ran_out = False
        with closing(self._on_device(train.epoch(self.epoch, start=start))) as batches:
            for x, y in batches:
                self._step(x, y)
                samples += len(y)
                if self.stopping:
                    break
            else:
                ran_out = True
        if ran_out and start == 0 and self.batch == 0:
            raise ValueError(f"the training data gave no batch in epoch {self.epoch + 1}; a "
                             "one-shot iterator (a generator) is used up after one epoch: "
                             "give something iterable again, like a DataLoader")
        if not (ran_out or self.batch == _length(train)):
            return None
        seconds = time.perf_counter() - started
        results = self.backend.metric_results(self.train_metrics)
        self.backend.reset_metrics(self.train_metrics)
        self.epoch, self.batch = self.epoch + 1, 0
        logs = {"epoch": self.epoch, "loss": results["loss"], "accuracy": results["accuracy"],
                "lr": self.lr, "seconds": seconds,
                "samples_per_second": samples / seconds if seconds else float("nan")}
        logs.update({k: results[k] for k in ("grad_norm", *metrics.TASK_METRICS) if k in results})
        return logs

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        """One optimizer step on a NumPy batch, at the scheduled learning rate."""
        self._step(self.backend.to_device(x), self.backend.to_device(y))

    def _step(self, x: Any, y: Any) -> None:
        """One optimizer step on a batch already on the device."""
        lr = self.optimizer_spec.lr(self.step)
        if lr != self.lr:
            self.optimizer = self.backend.set_learning_rate(self.optimizer, lr)
            self.lr = lr
        self.model, self.optimizer, self.train_metrics = self.backend.train_step(
            self.model, self.optimizer, self.loss, self.train_metrics, x, y)
        self.step += 1
        self.batch += 1
        agree = getattr(self.backend, "agree_on_signal", None)
        if agree is not None:  # data-parallel: every process stops after the same step
            agreed = agree(self._signal)
            if agreed and not self.interrupted:
                self._stop_on_signal(agreed)
        self._emit("on_batch_end")

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, data: Any) -> dict[str, float]:
        """Loss and accuracy over one pass of ``data``, without training, and the task's
        metric (``mae`` for float targets, ``perplexity`` for token sequences); with the
        MSE loss on crossloop Batches also ``r2``, the coefficient of determination."""
        data = self._source(data, None, shuffle=False)
        b = self.backend
        b.reset_metrics(self.eval_metrics)
        with closing(self._on_device(data.epoch(0))) as batches:
            for x, y in batches:
                self.eval_metrics = b.eval_step(self.model, self.loss, self.eval_metrics, x, y)
        results = b.metric_results(self.eval_metrics)
        out = {"loss": results["loss"], "accuracy": results["accuracy"],
               **{k: results[k] for k in metrics.TASK_METRICS if k in results}}
        if isinstance(self.loss, losses.MSE) and hasattr(data, "target_variance"):
            out["r2"] = metrics.r2(results["loss"], data.target_variance())
        return out

    def predict(self, x: Any, *, batch_size: int = 1000) -> np.ndarray:
        """The model's outputs (logits, canonical layout: ``(N, C)``, ``(N, T, C)``) for the
        inputs ``x`` as batches give them (samples first, images NCHW), in inference mode
        and ``batch_size`` samples at a time; the same array on every backend."""
        x = np.asarray(x)
        batch_size = check_whole("batch_size", batch_size, 1)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"x must hold one or more samples (sample axis first), got shape "
                             f"{x.shape}")
        x, b = as_canonical(x, np.dtype(self.dtype), "x"), self.backend  # floats: the run's dtype
        if isinstance(self.spec, nn.Sequential):
            nn.check_inputs(self.spec, x.shape[1:], x.dtype, self.dtype)
        return np.concatenate([
            b.to_numpy(b.forward(self.model, b.to_device(np.ascontiguousarray(x[i:i + batch_size])),
                                 training=False)) for i in range(0, len(x), batch_size)])

    def _source(self, data: Any, batch_size: int | None, shuffle: bool) -> BatchSource:
        """``data`` as batches of this run's dtype, checked against the model."""
        source = as_batch_source(data, dtype=self.dtype, batch_size=batch_size, seed=self.seed,
                                 shuffle=shuffle)
        self.check_data(source)
        return source

    def check_data(self, data: Any) -> None:
        """Raise ValueError naming the mismatch unless ``data`` fits this run's model and
        loss (see :func:`check_data`)."""
        check_data(self.spec, self.loss, data, self.dtype)

    def _on_device(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]):
        """The batches moved to the device, made ``prefetch`` ahead in a thread."""
        to_device = self.backend.to_device
        return prefetch(((to_device(x), to_device(y)) for x, y in batches), self.prefetch)

    def params(self) -> dict[str, np.ndarray]:
        """The current parameters in canonical layout."""
        return self.backend.get_params(self.model)

    def _on_signal(self, name: str) -> None:
        self._signal = name
        if not hasattr(self.backend, "agree_on_signal"):  # else once all processes agree (_step)
            self._stop_on_signal(name)

    def _stop_on_signal(self, name: str) -> None:
        self.interrupted = name
        self.stop(f"stopped by {name}")

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)


def _length(source: Any) -> int | None:
    """Batches per epoch, or None when the source does not know (a tf.data pipeline may not)."""
    try:
        return len(source)
    except TypeError:
        return None


def fit(spec: nn.Sequential | Any, optimizer: optim_lib.Optimizer | Any, train: Any,
        test: Any = None, *, epochs: int = 1, **trainer_options: Any) -> list[dict[str, float]]:
    """Build a :class:`Trainer` and train it: the one-call form of crossloop.

    ``train`` and ``test`` are what :meth:`Trainer.fit` takes: crossloop
    :class:`~crossloop.data.Batches` or a framework's own pipeline."""
    return Trainer(spec, optimizer, **trainer_options).fit(train, test, epochs=epochs)
