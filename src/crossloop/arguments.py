"""Checks of the Python API's arguments that :class:`~crossloop.Trainer` and
:func:`~crossloop.parity.run_parity` share, the data against the model included,
so a bad value fails at the call, with the same message on every backend, rather
than deep inside one framework."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import losses, native, nn

MAX_SEED = 2**32 - 1  # what every framework's and NumPy's seeding accepts


def check_whole(name: str, value: Any, low: int) -> int:
    """``value`` as an int if it is a whole number >= ``low`` (not a bool or a float:
    ``epochs=2.5`` would silently round); else TypeError or ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def check_seed(seed: Any) -> int:
    """``seed`` as an int if it is one in [0, 2**32 - 1], the seeds torch, TensorFlow and
    NumPy all take; else TypeError or ValueError naming it."""
    seed = check_whole("seed", seed, 0)
    if seed > MAX_SEED:
        raise ValueError(f"seed must be <= {MAX_SEED} (2**32 - 1), got {seed}")
    return seed


def check_model(spec: Any) -> None:
    """Raise TypeError unless ``spec`` is a crossloop model spec or a native model, saying
    how to get a spec from a preset's name."""
    if isinstance(spec, nn.Sequential) or native.is_native(spec):
        return
    name = spec if isinstance(spec, str) else "mlp"
    raise TypeError(f"spec must be a crossloop.nn.Sequential or a native model (torch "
                    f"nn.Module / keras.Model), got {_what(spec)}; for a preset name use "
                    f"crossloop.nn.preset({name!r}), or crossloop.resolve.model_spec({name!r}, "
                    "input_shape=..., num_classes=...) to fit it to your data")


def check_finite(params: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first tensor of ``params`` with a NaN or infinity:
    training would start from it and every step would give NaN."""
    for name, value in params.items():
        if not np.isfinite(np.asarray(value)).all():
            raise ValueError(f"initial params: tensor {name!r} has non-finite values (NaN or "
                             "inf); give finite values, or leave params out to draw them")


def check_data(spec: nn.Sequential | Any, loss: losses.Loss | Any, data: Any,
               dtype: str) -> None:
    """Raise ValueError naming the mismatch unless ``data`` fits model ``spec`` trained
    with ``loss`` in ``dtype``, where it says what its samples look like (crossloop
    Batches do: input and target shapes and dtypes, the range of class ids), so a
    misfit fails before the first step, the same on every backend. A native model or
    loss is left to its framework."""
    if not isinstance(spec, nn.Sequential):
        return
    if hasattr(data, "input_shape"):
        nn.check_inputs(spec, data.input_shape, data.input_dtype, dtype)
    if hasattr(data, "target_shape") and not isinstance(loss, native.NativeLoss):
        target_range = data.target_range() if hasattr(data, "target_range") else None
        losses.check_targets(loss, spec.shapes()[-1], data.target_shape, data.target_dtype,
                             target_range)


def _what(value: Any) -> str:
    return "None" if value is None else f"{type(value).__name__} {value!r}"[:80]
