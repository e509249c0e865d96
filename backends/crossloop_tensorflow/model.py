"""Build a Keras model from a crossloop spec; map its variables to the canonical layout.

The model runs NHWC inside (TensorFlow's fast layout on CPU); layouts are
converted only here, at the parameter boundary: conv kernels HWIO <-> OIHW,
dense kernels (in, out) <-> (out, in) (also attention's packed projections),
and the rows of a Dense fed by a Flatten permuted between HWC and CHW order.
Nothing is transposed in the hot path.
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from crossloop import nn
from crossloop.export.keras_code import keras_name

from . import layers as tf_layers

_ACTIVATIONS = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}


def _leaf(layer: object, shape: nn.Shape, kw: dict) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    """(the Keras layer to call, the layer holding the variables) for a leaf spec whose
    per-sample input shape is ``shape``."""
    if isinstance(layer, nn.Conv2d):
        k, s, p = layer.kernel_size, layer.stride, layer.padding
        same = p == "same" or (s == 1 and 2 * p == k - 1)  # symmetric padding 'same' reproduces
        conv = keras.layers.Conv2D(layer.out_channels, k, strides=s, use_bias=layer.bias,
                                   padding="same" if p and same else "valid", **kw)
        if p and not same:
            pad = keras.layers.ZeroPadding2D(p, dtype=kw["dtype"])
            return tf_layers.Sequential([pad, conv], dtype=kw["dtype"]), conv
        return conv, conv
    if isinstance(layer, (nn.Linear, nn.LayerNorm)):
        inner = (keras.layers.Dense(layer.out_features, use_bias=layer.bias, **kw)
                 if isinstance(layer, nn.Linear)
                 else keras.layers.LayerNormalization(epsilon=layer.eps, **kw))
        return (tf_layers.LastAxis(inner, dtype=kw["dtype"]) if len(shape) == 3 else inner), inner
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        built = tf_layers.BatchNorm(layer, 1 if len(shape) == 2 else -1, **kw)
    elif isinstance(layer, nn.ReLU):
        built = keras.layers.ReLU(**kw)
    elif type(layer) in _ACTIVATIONS:
        built = keras.layers.Activation(_ACTIVATIONS[type(layer)], **kw)
    elif isinstance(layer, nn.GELU):
        gelu = functools.partial(tf_layers.gelu, approximate=layer.approximate == "tanh")
        built = keras.layers.Activation(gelu, **kw)
    elif isinstance(layer, nn.MaxPool2d):
        built = keras.layers.MaxPooling2D(layer.kernel_size, layer.stride, **kw)
    elif isinstance(layer, nn.AvgPool2d):
        built = keras.layers.AveragePooling2D(layer.kernel_size, layer.stride, **kw)
    elif isinstance(layer, nn.GlobalAvgPool2d):
        built = keras.layers.GlobalAveragePooling2D(**kw)
    elif isinstance(layer, nn.Flatten):
        built = keras.layers.Flatten(**kw)
    elif isinstance(layer, nn.Dropout):
        built = keras.layers.Dropout(layer.p, **kw)
    elif isinstance(layer, nn.Embedding):
        built = keras.layers.Embedding(layer.num_embeddings, layer.embedding_dim, **kw)
    elif isinstance(layer, nn.PositionalEmbedding):
        built = tf_layers.PositionalEmbedding(layer, **kw)
    elif isinstance(layer, nn.SelfAttention):
        built = tf_layers.SelfAttention(layer, **kw)
    else:
        raise TypeError(f"the tensorflow backend cannot build {layer!r}")
    return built, built


# Where each leaf keeps a canonical tensor: (Keras attribute, layout).
_VARIABLES = {
    nn.Conv2d: {"weight": ("kernel", "conv"), "bias": ("bias", "")},
    nn.Linear: {"weight": ("kernel", "dense"), "bias": ("bias", "")},
    nn.LayerNorm: {"weight": ("gamma", ""), "bias": ("beta", "")},
    nn.Embedding: {"weight": ("embeddings", "")},
    nn.PositionalEmbedding: {"weight": ("weight", "")},
    nn.SelfAttention: {"in_proj_weight": ("in_kernel", "dense"), "in_proj_bias": ("in_bias", ""),
                       "out_proj.weight": ("out_kernel", "dense"), "out_proj.bias": ("out_bias", "")},
}
for _bn in (nn.BatchNorm1d, nn.BatchNorm2d):
    _VARIABLES[_bn] = {k: (k, "") for k in ("weight", "bias", "running_mean", "running_var")}


def _build(layer: object, path: str, shapes: dict, owners: dict, kw: dict) -> keras.layers.Layer:
    if isinstance(layer, (nn.Sequential, nn.Residual)):
        def sub(child: object, name: str) -> keras.layers.Layer:
            return _build(child, f"{path}.{name}" if path else name, shapes, owners, kw)
        if isinstance(layer, nn.Sequential):
            return tf_layers.Sequential([sub(c, n) for n, c in layer.children()], dtype=kw["dtype"])
        body = tf_layers.Sequential([sub(c, n) for n, c in layer.body.children()],
                                    dtype=kw["dtype"])
        extra = [None if c is None else sub(c, n)
                 for n, c in (("shortcut", layer.shortcut), ("activation", layer.activation))]
        return tf_layers.Residual(body, *extra, dtype=kw["dtype"])
    if isinstance(layer, nn.Flatten) and len(shapes[path]) == 3 and path not in kw["permuted"]:
        return tf_layers.FlattenCHW(dtype=kw["dtype"])
    built, owner = _leaf(layer, shapes[path], {"dtype": kw["dtype"]})
    owners[path] = (layer, owner)
    return built


def build(spec: nn.Sequential, dtype: str) -> keras.Model:
    """The native model. ``model.crossloop_table`` maps each canonical name to its
    variable and the layout it is kept in."""
    shape = spec.input_shape  # images run NHWC inside; other inputs as they come
    native = (*shape[1:], shape[0]) if len(shape) == 3 else shape
    tokens = isinstance(spec.leaves()[0][1], nn.Embedding)
    inputs = keras.Input(shape=native, dtype="int32" if tokens else dtype)
    owners: dict = {}
    permuted = {flatten for flatten, _, _ in spec.flatten_pairs()}
    root = _build(spec, "", {path: s for path, _, s in spec.trace()}, owners,
                  {"dtype": dtype, "permuted": permuted})
    model = keras.Model(inputs, root(inputs), name=keras_name(spec.name))
    flat = spec.flatten_sources()
    table = {}
    for path, (layer, owner) in owners.items():
        for local, (attr, layout) in _VARIABLES.get(type(layer), {}).items():
            name = f"{path}.{local}"
            table[name] = (getattr(owner, attr), ("flat", *flat[path]) if path in flat
                           and layout == "dense" else layout)
    model.crossloop_table = {name: table[name] for name in spec.param_shapes()}
    return model


def param_table(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """(canonical name, native variable) for every model variable -- trainable and
    state -- in order.

    A model built from a spec uses canonical names; any other Keras model keeps
    its variables' own paths (the loop works, cross-backend transfer does not).
    """
    table = getattr(model, "crossloop_table", None)
    if table is None:
        return [(v.path, v) for v in model.variables]
    return [(name, variable) for name, (variable, _) in table.items()]


def _layout(name: str, model: keras.Model) -> str | tuple:
    table = getattr(model, "crossloop_table", None)
    return "" if table is None else table[name][1]


def to_canonical(name: str, model: keras.Model, value: np.ndarray) -> np.ndarray:
    """Native layout -> canonical layout."""
    return layout_to_canonical(_layout(name, model), value)


def to_native(name: str, model: keras.Model, value: np.ndarray) -> np.ndarray:
    """Canonical layout -> native layout."""
    return layout_to_native(_layout(name, model), value)


def layout_to_canonical(layout: str | tuple, value: np.ndarray) -> np.ndarray:
    """A tensor kept in ``layout`` -> canonical layout. Layouts: ``"conv"`` (HWIO),
    ``"dense"`` ((in, out)), ``("flat", C, H, W)`` (a dense kernel whose inputs are
    a flattened (H, W, C) image), ``""`` (canonical already). The one place these
    conversions are written: the tracer (tracing.py) uses them too."""
    if layout == "conv":                     # HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    if layout == "dense":                    # (in, out) -> (out, in)
        return value.T
    if layout:                               # rows in HWC order -> CHW order
        _, c, h, w = layout
        return value.T.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(value.shape[1], -1)
    return value


def layout_to_native(layout: str | tuple, value: np.ndarray) -> np.ndarray:
    """Canonical layout -> a tensor kept in ``layout`` (see layout_to_canonical)."""
    if layout == "conv":                     # OIHW -> HWIO
        return value.transpose(2, 3, 1, 0)
    if layout == "dense":                    # (out, in) -> (in, out)
        return value.T
    if layout:                               # rows in CHW order -> HWC order
        _, c, h, w = layout
        return value.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(value.shape[0], -1).T
    return value
