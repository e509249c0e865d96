"""Build a Keras ``Sequential`` from a crossloop spec; map its parameters to the
canonical layout.

The model runs NHWC inside (TensorFlow's fast layout on CPU); layouts are
converted only here, at the parameter boundary: conv kernels HWIO <-> OIHW,
dense kernels (in, out) <-> (out, in), and the rows of a Dense fed by a Flatten
permuted between HWC and CHW order. Nothing is transposed in the hot path.
"""

from __future__ import annotations

import keras
import numpy as np

from crossloop import nn


def build(spec: nn.Sequential, dtype: str) -> keras.Sequential:
    """The native model; layer ``"l<index>"`` holds canonical ``"<index>.*"``."""
    shape = spec.input_shape  # images run NHWC inside; other inputs as they come
    native = (*shape[1:], shape[0]) if len(shape) == 3 else shape
    layers: list = [keras.Input(shape=native, dtype=dtype)]
    for i, layer in enumerate(spec.layers):
        kw = {"name": f"l{i}", "dtype": dtype}
        if isinstance(layer, nn.Conv2d):
            k, s, p = layer.kernel_size, layer.stride, layer.padding
            same = s == 1 and 2 * p == k - 1  # symmetric padding that 'same' reproduces
            if p and not same:
                layers.append(keras.layers.ZeroPadding2D(p, name=f"l{i}_pad", dtype=dtype))
            layers.append(keras.layers.Conv2D(layer.out_channels, k, strides=s,
                                              padding="same" if p and same else "valid", **kw))
        elif isinstance(layer, nn.Linear):
            layers.append(keras.layers.Dense(layer.out_features, **kw))
        elif isinstance(layer, nn.ReLU):
            layers.append(keras.layers.ReLU(**kw))
        elif isinstance(layer, nn.MaxPool2d):
            layers.append(keras.layers.MaxPooling2D(layer.kernel_size, layer.stride, **kw))
        elif isinstance(layer, nn.AvgPool2d):
            layers.append(keras.layers.AveragePooling2D(layer.kernel_size, layer.stride, **kw))
        elif isinstance(layer, nn.Flatten):
            layers.append(keras.layers.Flatten(**kw))
        elif isinstance(layer, nn.Dropout):
            layers.append(keras.layers.Dropout(layer.p, **kw))
        else:
            raise TypeError(f"the tensorflow backend cannot build {layer!r}")
    model = keras.Sequential(layers, name=spec.name)
    model.crossloop_spec = spec
    return model


def param_table(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """(canonical name, native variable) for every variable, in order.

    A model built from a spec uses canonical names; any other Keras model keeps
    its variables' own paths (the loop works, cross-backend transfer does not).
    """
    spec = getattr(model, "crossloop_spec", None)
    if spec is None:
        return [(v.path, v) for v in model.variables]
    table = []
    for name in spec.param_shapes():
        index, kind = name.split(".")
        layer = model.get_layer(f"l{index}")
        table.append((name, layer.kernel if kind == "weight" else layer.bias))
    return table


def _flatten_source(name: str, model: keras.Model) -> tuple[int, int, int] | None:
    spec = getattr(model, "crossloop_spec", None)
    if spec is None or not name.endswith(".weight"):
        return None
    return spec.flatten_sources().get(int(name.split(".")[0]))


def to_canonical(name: str, model: keras.Model, value: np.ndarray) -> np.ndarray:
    """Native layout -> canonical layout."""
    if getattr(model, "crossloop_spec", None) is None or value.ndim == 1:
        return value
    if value.ndim == 4:                      # HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    chw = _flatten_source(name, model)
    if chw is None:                          # (in, out) -> (out, in)
        return value.T
    c, h, w = chw                            # rows in HWC order -> CHW order
    return value.T.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(value.shape[1], -1)


def to_native(name: str, model: keras.Model, value: np.ndarray) -> np.ndarray:
    """Canonical layout -> native layout."""
    if getattr(model, "crossloop_spec", None) is None or value.ndim == 1:
        return value
    if value.ndim == 4:                      # OIHW -> HWIO
        return value.transpose(2, 3, 1, 0)
    chw = _flatten_source(name, model)
    if chw is None:                          # (out, in) -> (in, out)
        return value.T
    c, h, w = chw                            # rows in CHW order -> HWC order
    return value.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(value.shape[0], -1).T
