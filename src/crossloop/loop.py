"""fit / evaluate, written once against the backend protocol.

A :class:`Trainer` holds one run's state (backend, model, optimizer, step,
epoch) and fires named events that callbacks hook into:

    on_fit_start, on_epoch_start, on_batch_end, on_epoch_end(logs), on_fit_end

The hot path is one ``backend.train_step`` per batch; metrics stay on the
device and are read once per epoch.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

import numpy as np

from . import losses, nn
from . import optim as optim_lib
from .backend import Backend, get_backend
from .callbacks import Callback

EVENTS = ("on_fit_start", "on_epoch_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class Trainer:
    """One training run: the model spec built on a backend, its optimizer and position.

    ``backend`` is a name (``"torch"``, ``"tensorflow"``; default from
    ``$CROSSLOOP_BACKEND``) or a backend object from :func:`crossloop.get_backend`.
    Initial parameters are drawn by crossloop from ``seed`` unless ``params``
    are given, so every backend starts from the same weights.
    """

    def __init__(self, spec: nn.Sequential, optimizer: optim_lib.Optimizer, *,
                 backend: str | Backend | None = None, device: str = "auto",
                 loss: str | losses.Loss = "cross_entropy", dtype: str = "float32",
                 seed: int = 0, init: str = "torch",
                 params: Mapping[str, np.ndarray] | None = None,
                 callbacks: Iterable[Callback] = (), **backend_options: Any):
        self.backend = (backend if backend is not None and not isinstance(backend, str)
                        else get_backend(backend, device=device, **backend_options))
        self.spec, self.dtype, self.seed = spec, dtype, seed
        self.optimizer_spec = optimizer
        self.loss = losses.get(loss)
        self.backend.seed(seed)
        if params is None:
            params = nn.init_params(spec, seed, init=init, dtype=dtype)
        self.model = self.backend.build_model(spec, params, dtype)
        self.optimizer = self.backend.build_optimizer(optimizer, self.model)
        self.train_metrics = self.backend.metrics()
        self.eval_metrics = self.backend.metrics()
        self.callbacks = list(callbacks)
        self.step = 0          # optimizer steps taken
        self.epoch = 0         # epochs completed
        self.batch = 0         # batches done in the current epoch
        self.lr = optimizer.lr(0)
        self.history: list[dict[str, float]] = []
        self.stop_training = False

    # -- training -------------------------------------------------------------
    def fit(self, train, test=None, *, epochs: int = 1) -> list[dict[str, float]]:
        """Train until ``epochs`` epochs are done (counting any already done);
        evaluate on ``test`` after each. Returns the per-epoch history."""
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.stop_training = False
        self._emit("on_fit_start")
        while self.epoch < epochs and not self.stop_training:
            logs = self.train_epoch(train)
            if test is not None:
                logs.update({f"test_{k}": v for k, v in self.evaluate(test).items()})
            self.history.append(logs)
            self._emit("on_epoch_end", logs)
        self._emit("on_fit_end")
        return self.history

    def train_epoch(self, train) -> dict[str, float]:
        """One pass over ``train`` (from the current batch when resuming)."""
        self._emit("on_epoch_start")
        started = time.perf_counter()
        for x, y in train.epoch(self.epoch, start=self.batch):
            self.train_batch(x, y)
            if self.stop_training:
                break
        seconds = time.perf_counter() - started
        results = self.backend.metric_results(self.train_metrics)
        self.backend.reset_metrics(self.train_metrics)
        if not self.stop_training:
            self.epoch, self.batch = self.epoch + 1, 0
        return {"epoch": self.epoch, "loss": results["loss"], "accuracy": results["accuracy"],
                "lr": self.lr, "seconds": seconds,
                "samples_per_second": results["count"] / seconds if seconds else float("nan")}

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        """One optimizer step on a NumPy batch, at the scheduled learning rate."""
        lr = self.optimizer_spec.lr(self.step)
        if lr != self.lr:
            self.optimizer = self.backend.set_learning_rate(self.optimizer, lr)
            self.lr = lr
        b = self.backend
        self.model, self.optimizer, self.train_metrics = b.train_step(
            self.model, self.optimizer, self.loss, self.train_metrics, b.to_device(x), b.to_device(y))
        self.step += 1
        self.batch += 1
        self._emit("on_batch_end")

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, data) -> dict[str, float]:
        """Loss and accuracy over one pass of ``data``, without training."""
        b = self.backend
        b.reset_metrics(self.eval_metrics)
        for x, y in data.epoch(0):
            self.eval_metrics = b.eval_step(self.model, self.loss, self.eval_metrics,
                                            b.to_device(x), b.to_device(y))
        results = b.metric_results(self.eval_metrics)
        return {"loss": results["loss"], "accuracy": results["accuracy"]}

    def params(self) -> dict[str, np.ndarray]:
        """The current parameters in canonical layout."""
        return self.backend.get_params(self.model)

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)


def fit(spec: nn.Sequential, optimizer: optim_lib.Optimizer, train, test=None, *,
        epochs: int = 1, **trainer_options: Any) -> list[dict[str, float]]:
    """Build a :class:`Trainer` and train it: the one-call form of crossloop."""
    return Trainer(spec, optimizer, **trainer_options).fit(train, test, epochs=epochs)
