"""NumPy initialisation of a model's tensors, and the checks of tensors and inputs
against a model spec."""

from __future__ import annotations

import math

import numpy as np

from .containers import Sequential
from .layers import AvgPool2d, Conv2d, Dropout, Embedding, Flatten, Linear, MaxPool2d, Shape

INITS = ("torch", "glorot")
DTYPES = ("float32", "float64")


def init_params(spec: Sequential, seed: int = 0, *, init: str = "torch",
                dtype: str = "float32") -> dict[str, np.ndarray]:
    """Draw every model tensor in NumPy, in canonical layout and ``state_dict`` order.

    ``init="torch"``: PyTorch's defaults -- conv and dense weights and biases
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); attention's packed in-projection
    xavier-uniform with zero biases; embeddings N(0, 1). ``init="glorot"``: Keras's
    defaults -- glorot-uniform weights, zero biases, embeddings U(-0.05, 0.05).
    Normalisation layers start at weight 1, bias 0, running mean 0, running var 1.
    Values are drawn in float64 from ``seed`` and rounded once to ``dtype``.
    """
    if init not in INITS:
        raise ValueError(f"init={init!r} is not one of {', '.join(INITS)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, t in spec.tensors().items():
        fan_in, fan_out = t.fan
        rule = t.init
        if init == "glorot":
            rule = {"weight": "xavier", "bias": "zeros"}.get(rule, rule)
        if rule in ("weight", "bias"):
            value = rng.uniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), size=t.shape)
        elif rule == "xavier":
            bound = math.sqrt(6 / (fan_in + fan_out))
            value = rng.uniform(-bound, bound, size=t.shape)
        elif rule == "embedding":
            value = (rng.standard_normal(t.shape) if init == "torch"
                     else rng.uniform(-0.05, 0.05, size=t.shape))
        else:
            value = np.full(t.shape, 1.0 if rule == "ones" else 0.0)
        params[name] = value.astype(dtype)
    return params


def check_params(expected: dict[str, Shape], params: dict[str, np.ndarray], *,
                 what: str = "parameters") -> None:
    """Raise naming the first missing, unexpected or mis-shaped tensor."""
    for name, shape in expected.items():
        if name not in params:
            raise ValueError(f"{what}: missing tensor {name!r} (expected shape {tuple(shape)})")
        got = tuple(np.shape(params[name]))
        if got != tuple(shape):
            raise ValueError(f"{what}: tensor {name!r} has shape {got}, the model expects {tuple(shape)}")
    extra = sorted(set(params) - set(expected))
    if extra:
        raise ValueError(f"{what}: unexpected tensor {extra[0]!r} (the model has {', '.join(expected)})")


def check_inputs(spec: Sequential, shape: Shape, dtype: np.dtype, run_dtype: str) -> None:
    """Raise ValueError naming the mismatch unless samples of ``shape`` and ``dtype`` fit
    ``spec`` run in ``run_dtype``: the model's input shape; floats of the run's dtype,
    or integers (token ids) only for a model whose first layer does not compute on them;
    an Embedding first needs integers."""
    if tuple(shape) != spec.input_shape:
        raise ValueError(f"model {spec.name} takes inputs of shape {spec.input_shape}, the data "
                         f"gives {tuple(shape)}: use a model for this data")
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype != np.dtype(run_dtype):
        raise ValueError(f"the batches are {dtype}, the run is {run_dtype}: make them with "
                         f"dtype={run_dtype!r}")
    first = next((leaf for _, leaf in spec.leaves() if not isinstance(leaf, (Flatten, Dropout))),
                 None)
    if dtype.kind in "iu" and isinstance(first, (Conv2d, Linear, MaxPool2d, AvgPool2d)):
        raise ValueError(f"the inputs are integers ({dtype}), but model {spec.name} starts with "
                         f"{type(first).__name__}, which needs floats: normalise them (for "
                         "MNIST-like images transforms=crossloop.data.transforms.MNIST)")
    if dtype.kind not in "iu" and isinstance(first, Embedding):
        raise ValueError(f"the inputs are {dtype}, but model {spec.name} starts with an "
                         "Embedding, which takes integer token ids")
