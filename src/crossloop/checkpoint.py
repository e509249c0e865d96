"""Checkpoints: a trainer's state (:meth:`crossloop.Trainer.state_dict`) in one
portable, atomic, pickle-free file.

One checkpoint is one safetensors file (:mod:`crossloop.storage`): the model
(``params/<name>``) and optimizer (``optimizer/<name>.<slot>``) tensors in
canonical layout, and a JSON document holding everything else (position, run
description, history, metric sums, callback state). Loading cannot run code,
and the canonical layout lets a run saved on one backend resume on another.
This module only serializes: what a state holds is the trainer's business.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from .errors import InputError
from .state import StateError, check_state

FORMAT = "crossloop.checkpoint/1"
# state_dict entry -> tensor-name prefix in the file
SECTIONS = {"model": "params", "optimizer": "optimizer"}


class CheckpointError(InputError, ValueError):
    """A checkpoint cannot be read, or does not fit the run it is loaded into."""


def save(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path | None:
    """Write ``state`` (a trainer's ``state_dict()``) to ``path`` atomically and
    return the path; write nothing (and return None) if the model's tensors are
    no longer finite, so the last good checkpoint stays."""
    if not all(np.isfinite(v).all() for v in state["model"].values()):
        return None
    tensors = {f"{prefix}/{name}": value for key, prefix in SECTIONS.items()
               for name, value in state[key].items()}
    document = {"format": FORMAT, **{k: v for k, v in state.items() if k not in SECTIONS}}
    return storage.write(path, tensors, document)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint back into a state dict, without executing anything it contains."""
    path = Path(path)
    try:
        document, tensors = storage.read(path, "a crossloop checkpoint")
    except (FileNotFoundError, storage.StorageError) as exc:
        raise CheckpointError(str(exc)) from None
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {document.get('format')!r}, expected {FORMAT!r}")
    state: dict[str, Any] = {k: v for k, v in document.items() if k != "format"}
    prefixes = {prefix: key for key, prefix in SECTIONS.items()}
    for key in SECTIONS:
        state[key] = {}
    for name, value in tensors.items():
        prefix, _, rest = name.partition("/")
        if prefix not in prefixes:
            raise CheckpointError(f"{path}: unexpected tensor {name!r} (sections: "
                                  f"{', '.join(p + '/' for p in prefixes)})")
        state[prefixes[prefix]][rest] = value
    try:
        check_state(state)
    except StateError as exc:
        raise CheckpointError(f"{path} is not a valid checkpoint: {exc}") from None
    return state


def restore(trainer: Any, path: str | os.PathLike[str], *,
            reset_optimizer: bool = False) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into ``trainer`` (``trainer.load_state_dict``);
    return the loaded state. A checkpoint that does not fit the trainer raises
    :class:`CheckpointError` naming the file and the first mismatch."""
    state = load(path)
    try:
        trainer.load_state_dict(state, reset_optimizer=reset_optimizer)
    except StateError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {exc}") from None
    return state
