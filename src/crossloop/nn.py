"""Neutral layer specs, the canonical parameter layout, and NumPy initialisation.

A model is a :class:`Sequential` of small frozen layer specs. Each backend
builds its native model from the spec; crossloop draws the initial parameters
itself, in NumPy, so the same seed gives bit-identical starting weights on
every backend.

Canonical layout (PyTorch's): activations NCHW, conv kernels OIHW, dense
weights (out, in), Flatten in (C, H, W) order. Parameter names are
``"<layer index>.weight"`` / ``"<layer index>.bias"``, as in a torch
``nn.Sequential`` state dict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

INITS = ("torch", "glorot")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution; ``padding`` is symmetric zero padding in pixels."""
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class Linear:
    """Fully connected layer, weight (out_features, in_features)."""
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ReLU:
    """Elementwise max(x, 0)."""


@dataclass(frozen=True)
class MaxPool2d:
    """Max pooling without padding; ``stride`` defaults to ``kernel_size``."""
    kernel_size: int
    stride: int | None = None


@dataclass(frozen=True)
class AvgPool2d:
    """Average pooling without padding; ``stride`` defaults to ``kernel_size``."""
    kernel_size: int
    stride: int | None = None


@dataclass(frozen=True)
class Flatten:
    """Flatten (C, H, W) features into one vector, in C, H, W order."""


@dataclass(frozen=True)
class Dropout:
    """Zero each activation with probability ``p`` during training.

    Masks come from each framework's own RNG, so they differ between backends:
    parity runs use ``p=0`` (see docs/framework-differences.md).
    """
    p: float = 0.5


Layer = Conv2d | Linear | ReLU | MaxPool2d | AvgPool2d | Flatten | Dropout
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Sequential:
    """A stack of layers applied in order to inputs of ``input_shape`` (C, H, W)."""
    layers: tuple[Layer, ...]
    input_shape: Shape = (1, 28, 28)
    name: str = "model"
    num_classes: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        shapes = self.shapes()  # validates the stack
        object.__setattr__(self, "num_classes", int(np.prod(shapes[-1])))

    def shapes(self) -> list[Shape]:
        """Output shape (without batch) after each layer; raises on a mismatch."""
        shape, out = self.input_shape, []
        for i, layer in enumerate(self.layers):
            shape = _output_shape(i, layer, shape)
            out.append(shape)
        return out

    def param_shapes(self) -> dict[str, Shape]:
        """Canonical name -> canonical shape of every parameter."""
        shapes: dict[str, Shape] = {}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Conv2d):
                k = layer.kernel_size
                shapes[f"{i}.weight"] = (layer.out_channels, layer.in_channels, k, k)
                shapes[f"{i}.bias"] = (layer.out_channels,)
            elif isinstance(layer, Linear):
                shapes[f"{i}.weight"] = (layer.out_features, layer.in_features)
                shapes[f"{i}.bias"] = (layer.out_features,)
        return shapes

    def flatten_sources(self) -> dict[int, Shape]:
        """For each Linear fed by a Flatten: layer index -> the (C, H, W) flattened.

        Backends that keep activations NHWC flatten in (H, W, C) order, so they
        permute these Linear layers' input rows at the parameter boundary.
        """
        sources, pending = {}, None
        shapes = [self.input_shape, *self.shapes()]
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Flatten) and len(shapes[i]) == 3:
                pending = shapes[i]
            elif isinstance(layer, Linear):
                if pending is not None:
                    sources[i] = pending
                pending = None
            elif not isinstance(layer, (ReLU, Dropout)):
                pending = None
        return sources

    def describe(self) -> dict:
        """A JSON-able description, stored beside saved weights and checkpoints."""
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [{"type": type(layer).__name__, **layer.__dict__}
                           for layer in self.layers]}


def _pooled(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _output_shape(i: int, layer: Layer, shape: Shape) -> Shape:
    where = f"layer {i} ({type(layer).__name__})"
    if isinstance(layer, Conv2d):
        if len(shape) != 3 or shape[0] != layer.in_channels:
            raise ValueError(f"{where} expects (C={layer.in_channels}, H, W) input, got {shape}")
        c, h, w = shape
        k, s, p = layer.kernel_size, layer.stride, layer.padding
        out = (layer.out_channels, _pooled(h + 2 * p, k, s), _pooled(w + 2 * p, k, s))
    elif isinstance(layer, (MaxPool2d, AvgPool2d)):
        if len(shape) != 3:
            raise ValueError(f"{where} expects (C, H, W) input, got {shape}")
        c, h, w = shape
        k, s = layer.kernel_size, layer.stride or layer.kernel_size
        out = (c, _pooled(h, k, s), _pooled(w, k, s))
    elif isinstance(layer, Flatten):
        out = (int(np.prod(shape)),)
    elif isinstance(layer, Linear):
        if shape != (layer.in_features,):
            raise ValueError(f"{where} expects ({layer.in_features},) input, got {shape}; "
                             f"set in_features={int(np.prod(shape))} or add a Flatten")
        out = (layer.out_features,)
    elif isinstance(layer, (ReLU, Dropout)):
        out = shape
    else:
        raise TypeError(f"{where} is not a crossloop.nn layer spec")
    if min(out) < 1:
        raise ValueError(f"{where} turns {shape} into the empty shape {out}")
    return out


def init_params(spec: Sequential, seed: int = 0, *, init: str = "torch",
                dtype: str = "float32") -> dict[str, np.ndarray]:
    """Draw initial parameters in NumPy, in canonical layout.

    ``init="torch"``: PyTorch's defaults, kaiming-uniform(a=sqrt(5)) weights,
    i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases from the same range.
    ``init="glorot"``: Keras's defaults, glorot-uniform weights, zero biases.
    Values are drawn in float64 from ``seed`` and rounded once to ``dtype``.
    """
    if init not in INITS:
        raise ValueError(f"init={init!r} is not one of {', '.join(INITS)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DTYPES)}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in spec.param_shapes().items():
        if name.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            fan_out = shape[0] * int(np.prod(shape[2:]))
            bound = (1 / math.sqrt(fan_in) if init == "torch"
                     else math.sqrt(6 / (fan_in + fan_out)))
            value = rng.uniform(-bound, bound, size=shape)
        elif init == "torch":
            value = rng.uniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), size=shape)
        else:
            value = np.zeros(shape)
        params[name] = value.astype(dtype)
    return params


# -- presets: mlp and linear fit any input shape; conv1 and lenet5 take 28x28 grey images --

def mlp(hidden: int = 128, num_classes: int = 10, input_shape: Shape = (1, 28, 28)) -> Sequential:
    """Flatten + Dense(hidden) + ReLU + Dense(num_classes): the quick-start MLP, for
    inputs of any ``input_shape`` (MNIST's by default)."""
    features = int(np.prod(input_shape))
    return Sequential((Flatten(), Linear(features, hidden), ReLU(), Linear(hidden, num_classes)),
                      input_shape=input_shape, name="mlp")


def linear(num_classes: int = 10, input_shape: Shape = (1, 28, 28)) -> Sequential:
    """Flatten + Dense(num_classes): linear (or logistic) regression on any inputs."""
    return Sequential((Flatten(), Linear(int(np.prod(input_shape)), num_classes)),
                      input_shape=input_shape, name="linear")


def conv1(filters: int = 32, num_classes: int = 10) -> Sequential:
    """The TensorFlow custom-loop tutorial model: Conv 32 3x3 + ReLU + Flatten + Dense 10."""
    return Sequential((Conv2d(1, filters, 3), ReLU(), Flatten(),
                       Linear(filters * 26 * 26, num_classes)), name="conv1")


def lenet5(num_classes: int = 10) -> Sequential:
    """LeNet-5 with ReLU and max pooling, 28x28 inputs padded by 2 in the first conv."""
    return Sequential((
        Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2),
        Conv2d(6, 16, 5), ReLU(), MaxPool2d(2),
        Flatten(), Linear(16 * 5 * 5, 120), ReLU(), Linear(120, 84), ReLU(),
        Linear(84, num_classes),
    ), name="lenet5")


PRESETS = {"mlp": mlp, "linear": linear, "conv1": conv1, "lenet5": lenet5}


def preset(name: str) -> Sequential:
    """A preset model spec by name (mlp, linear, conv1, lenet5), with its defaults."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; presets: {', '.join(PRESETS)}") from None


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
    or integers (token ids) only for a model whose first layer does not compute on them."""
    if tuple(shape) != spec.input_shape:
        raise ValueError(f"model {spec.name} takes inputs of shape {spec.input_shape}, the data "
                         f"gives {tuple(shape)}: use a model for this data")
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype != np.dtype(run_dtype):
        raise ValueError(f"the batches are {dtype}, the run is {run_dtype}: make them with "
                         f"dtype={run_dtype!r}")
    first = next((layer for layer in spec.layers if not isinstance(layer, (Flatten, Dropout))),
                 None)
    if dtype.kind in "iu" and isinstance(first, (Conv2d, Linear, MaxPool2d, AvgPool2d)):
        raise ValueError(f"the inputs are integers ({dtype}), but model {spec.name} starts with "
                         f"{type(first).__name__}, which needs floats: normalise them (for "
                         "MNIST-like images transforms=crossloop.data.transforms.MNIST)")
