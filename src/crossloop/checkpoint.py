"""Portable, atomic, pickle-free checkpoints, and exact resume.

One checkpoint is one safetensors file: parameters (``params/<name>``),
optimizer slots (``optimizer/<name>.<slot>``) and metric sums
(``metrics/<name>``) in canonical layout, with a JSON document in the file's
metadata holding everything else (step, epoch, batch within the epoch, seed,
data order, backend, model spec, optimizer spec, history, callback state).
safetensors holds only tensors and strings, so loading a checkpoint cannot run
code, and the canonical layout lets a run saved on one backend resume on
another. Files are written to a temporary name, flushed, and renamed over the
old file: a crash or a full disk mid-write leaves the previous one intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import nn
from .callbacks import Callback
from .files import atomic_write

FORMAT = "crossloop.checkpoint/1"
_SECTIONS = ("params", "optimizer")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the run it is loaded into."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors by section and the JSON metadata."""
    params: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    meta: dict[str, Any]


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("checkpoints need safetensors: install crossloop[checkpoint]") from None
    return safetensors.numpy


def state_of(trainer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Everything needed to continue ``trainer`` exactly: (tensors, JSON metadata)."""
    b = trainer.backend
    tensors = {f"params/{k}": v for k, v in b.get_params(trainer.model).items()}
    tensors.update({f"optimizer/{k}": v
                    for k, v in b.get_optimizer_state(trainer.optimizer, trainer.model).items()})
    meta = {
        "format": FORMAT,
        "backend": b.name,
        "dtype": trainer.dtype,
        "step": trainer.step, "epoch": trainer.epoch, "batch": trainer.batch,
        "seed": trainer.seed,
        "data_order": "numpy default_rng([seed, epoch]).permutation, then skip `batch` batches",
        "spec": trainer.spec.describe(),
        "optimizer": repr(trainer.optimizer_spec),
        "train_metrics": b.metric_sums(trainer.train_metrics),
        "history": trainer.history,
        "callbacks": {type(c).__name__: c.state_dict() for c in trainer.callbacks
                      if hasattr(c, "state_dict")},
    }
    return tensors, meta


def save(path: str | os.PathLike, trainer) -> Path | None:
    """Write ``trainer``'s state to ``path`` atomically and return the path; write
    nothing (and return None) if the parameters are no longer finite."""
    tensors, meta = state_of(trainer)
    if not all(np.isfinite(v).all() for k, v in tensors.items() if k.startswith("params/")):
        return None
    return write(path, tensors, meta)


def write(path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write tensors + JSON metadata to ``path`` via a temporary file and a rename."""
    path = Path(path)
    data = _safetensors().save({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                               metadata={"crossloop": json.dumps(meta, allow_nan=True)})
    atomic_write(path, lambda f: f.write(data))
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint without executing anything it contains."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    _safetensors()
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {})["crossloop"])
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise CheckpointError(
            f"{path} is not a crossloop checkpoint ({type(exc).__name__}: {exc}); "
            "crossloop reads only safetensors files it wrote, never pickles") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    sections: dict[str, dict[str, np.ndarray]] = {s: {} for s in _SECTIONS}
    for key, value in tensors.items():
        section, _, name = key.partition("/")
        sections.setdefault(section, {})[name] = value
    return Checkpoint(sections["params"], sections["optimizer"], meta)


def restore(trainer, path: str | os.PathLike) -> Checkpoint:
    """Put ``trainer`` exactly where the checkpoint left off (on any backend)."""
    ckpt = load(path)
    meta = ckpt.meta
    try:
        nn.check_params(trainer.spec.param_shapes(), ckpt.params, what=f"checkpoint {path}")
    except ValueError as exc:
        raise CheckpointError(f"{exc}; it was saved from model {meta['spec']['name']!r}") from None
    if meta["spec"] != trainer.spec.describe():
        raise CheckpointError(f"{path} was saved from a different {meta['spec']['name']!r} "
                              f"model spec than this run's {trainer.spec.name!r}: "
                              f"{meta['spec']['layers']} vs {trainer.spec.describe()['layers']}")
    b = trainer.backend
    params = {k: v.astype(trainer.dtype) for k, v in ckpt.params.items()}
    trainer.model = b.set_params(trainer.model, params)
    trainer.optimizer = b.set_optimizer_state(
        trainer.optimizer, trainer.model,
        {k: v.astype(trainer.dtype) for k, v in ckpt.optimizer.items()}, meta["step"])
    trainer.step, trainer.epoch, trainer.batch = meta["step"], meta["epoch"], meta["batch"]
    trainer.history = list(meta["history"])
    trainer.train_metrics = b.set_metric_sums(trainer.train_metrics, meta["train_metrics"])
    for callback in trainer.callbacks:
        state = meta["callbacks"].get(type(callback).__name__)
        if state is not None and hasattr(callback, "load_state_dict"):
            callback.load_state_dict(state)
    return ckpt


class CheckpointCallback(Callback):
    """Save ``last.safetensors`` every epoch (and every ``every_steps`` steps) and on
    interruption, and ``best.safetensors`` when ``monitor`` improves.

    Parameters that are no longer finite are never saved, so the last good
    checkpoint stays.
    """

    def __init__(self, directory: str | os.PathLike, *, every_steps: int | None = None,
                 monitor: str = "test_accuracy", mode: str = "max"):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.directory = Path(directory)
        self.every_steps, self.monitor, self.mode = every_steps, monitor, mode
        self.best: float | None = None

    @property
    def last(self) -> Path:
        return self.directory / "last.safetensors"

    def on_batch_end(self, trainer) -> None:
        if self.every_steps and trainer.step % self.every_steps == 0:
            save(self.last, trainer)

    def on_epoch_end(self, trainer, logs: dict[str, float]) -> None:
        value = logs.get(self.monitor)
        if value is not None and np.isfinite(value) and (
                self.best is None or (value > self.best if self.mode == "max" else value < self.best)):
            self.best = float(value)
            save(self.directory / "best.safetensors", trainer)
        save(self.last, trainer)

    def on_interrupt(self, trainer) -> None:
        save(self.last, trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
