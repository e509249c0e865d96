"""Portable weights: a model's tensors -- parameters and non-trainable state such as
BatchNorm running statistics -- in canonical layout, in one safetensors file.

The file holds each tensor in crossloop's canonical layout (torch's: conv
kernels OIHW, dense weights (out, in), Flatten rows in C, H, W order), so
weights trained on any backend load into any other, bit for bit. safetensors
stores raw arrays and a JSON header, never pickle: loading runs no code. The
header names the format and, when given, the model spec
(:meth:`crossloop.nn.Sequential.describe`), so a file says what it belongs to.

Files are stored like checkpoints (:mod:`crossloop.storage`: temporary file,
fsync, rename), and :func:`load_params` also reads the parameters out of a
training checkpoint. safetensors is the optional extra ``checkpoint``,
imported only when a file is written or read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint, nn, storage

FORMAT = "crossloop.params/1"
LAYOUT = "canonical: conv OIHW, dense (out, in), flatten C,H,W"  # attention: torch's packed


def save_params(path: str | os.PathLike[str], params: Mapping[str, np.ndarray],
                spec: nn.Sequential | None = None) -> Path:
    """Write ``params`` (canonical layout, e.g. ``backend.get_params(model)``) to
    ``path`` atomically; return the path.

    With ``spec`` the tensors are checked against the model's shapes first and
    the spec's description is stored in the header.
    """
    if spec is not None:
        nn.check_params(spec.param_shapes(), dict(params), what=f"save_params({spec.name})")
    header = {"format": FORMAT, "layout": LAYOUT, "tensors": list(params),
              "spec": spec.describe() if spec is not None else None}
    return storage.write(path, dict(params), header)


def load_params(path: str | os.PathLike[str], spec: nn.Sequential | None = None,
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read ``(params, header)`` from a file written by :func:`save_params` (or
    the parameters of a checkpoint written by :mod:`crossloop.checkpoint`).

    ``params`` come back in the order they were saved, in canonical layout,
    ready for ``backend.set_params`` or ``Trainer(params=...)`` on any backend.
    ``header`` is the file's JSON header; ``header["spec"]`` is the saved model
    description or None. With ``spec`` the file must belong to that model: its
    description and every tensor's shape are checked.
    """
    path = Path(path)
    header, tensors = storage.read(path, "a crossloop weights file")
    if header.get("format") == FORMAT:
        params = {name: tensors[name] for name in header["tensors"]}
    elif header.get("format") == checkpoint.FORMAT:
        prefix = checkpoint.SECTIONS["model"] + "/"
        params = {key[len(prefix):]: value for key, value in tensors.items()
                  if key.startswith(prefix)}
    else:
        raise ValueError(f"load_params: {path} holds no crossloop parameters (header format "
                         f"{header.get('format')!r}, expected {FORMAT!r}); write it with "
                         "crossloop.save_params")
    if spec is not None:
        saved = header.get("spec")
        if saved is not None and saved != spec.describe():
            raise ValueError(f"load_params: {path} was saved for model {saved['name']!r} "
                             f"{saved['layers']}, not for {spec.name!r} {spec.describe()['layers']}")
        nn.check_params(spec.param_shapes(), params, what=f"load_params({path})")
    return params, header
