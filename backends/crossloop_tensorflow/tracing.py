"""Trace a Keras model's layer calls for weight transfer and model comparison (see
``crossloop.tracing``); mirrors crossloop_torch/tracing.py.

Keras has no forward hooks: each leaf layer's ``call`` is wrapped for one eager
forward pass. Conversions to canonical (torch's) layout: conv kernels HWIO ->
OIHW, dense kernels (in, out) -> (out, in) with rows permuted from H, W, C to
C, H, W order after a Flatten of an image, BatchNorm gamma/beta/moving
statistics -> weight/bias/running_mean/running_var (momentum as torch counts
it: 1 - Keras's), MultiHeadAttention's per-head (E, H, D) kernels -> torch's
packed ``in_proj_weight`` (3E, E) and ``out_proj``. Activations NHWC -> NCHW.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from crossloop.tracing import ACTIVATIONS, Arrays, LayerRecord

from .model import layout_to_canonical, layout_to_native

L = keras.layers
_KINDS: dict[type, str] = {
    L.Conv2D: "conv2d", L.Dense: "linear", L.BatchNormalization: "batchnorm",
    L.LayerNormalization: "layernorm", L.Embedding: "embedding", L.MultiHeadAttention: "attention",
    L.ReLU: "relu", L.Flatten: "flatten", L.ZeroPadding2D: "pad", L.MaxPooling2D: "maxpool",
    L.AveragePooling2D: "avgpool", L.Dropout: "dropout", L.Softmax: "softmax", L.Add: "add",
}
_RENAMES = {"batchnorm": {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                          "moving_variance": "running_var"},
            "layernorm": {"gamma": "weight", "beta": "bias"},
            "embedding": {"embeddings": "weight"}}


def kind_of(layer: keras.layers.Layer) -> str:
    """The layer's kind in crossloop's words (``crossloop.tracing``), found through its
    class's bases so a subclass keeps its parent's kind; an ``Activation`` by its
    function (relu, gelu, softmax); ``other:<class>`` when unknown."""
    if isinstance(layer, L.Activation):
        return activation_kind(layer.activation)
    for cls in type(layer).__mro__:
        if cls in _KINDS:
            return _KINDS[cls]
    return f"other:{type(layer).__name__}"


def activation_kind(function: Any) -> str:
    """The kind of a Keras activation function (an Activation layer's, or one fused
    into a Dense or Conv2D)."""
    name = _function_name(function)
    return name if name in ACTIVATIONS else f"other:Activation({name})"


def _function_name(function: Any) -> str:
    return getattr(function, "__name__", "")


def config_of(layer: keras.layers.Layer, kind: str, raw_input: np.ndarray | None) -> dict[str, Any]:
    """The settings that change what a layer computes, in torch's terms."""
    if kind == "conv2d":
        return {"stride": layer.strides[0], "padding": _pads(layer, raw_input),
                "native": f"strides {layer.strides}, padding {layer.padding!r}"}
    if kind == "batchnorm":
        stock = type(layer).call is L.BatchNormalization.call  # a subclass may update as torch
        return {"momentum": round(1 - layer.momentum, 12), "eps": layer.epsilon,
                "running_var": "biased" if stock else f"{type(layer).__name__}'s own",
                "native": f"Keras momentum {layer.momentum} / epsilon {layer.epsilon}"}
    if kind == "layernorm":
        return {"eps": layer.epsilon, "native": f"Keras epsilon {layer.epsilon}"}
    if kind == "gelu":
        return {"approximate": None, "native": f"Keras Activation({layer.activation.__module__}."
                                               f"{layer.activation.__name__})"}
    if kind == "attention":
        return {"heads": layer.num_heads, "native": f"Keras num_heads {layer.num_heads}"}
    return {}


def _pads(layer: keras.layers.Layer, raw_input: np.ndarray | None) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zeros the convolution adds: 'same' pads the odd one
    at the bottom and right (torch pads symmetrically)."""
    if layer.padding == "valid" or raw_input is None:
        return (0, 0, 0, 0)
    pads = []
    for size, k, s in zip(raw_input.shape[1:3], layer.kernel_size, layer.strides):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def leaves(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers crossloop traces: known kinds (not their insides) and childless layers."""
    out, inside = [], set()
    for layer in model._flatten_layers(include_self=False):
        if id(layer) in inside:
            continue
        known = not kind_of(layer).startswith("other:")
        if known or not layer._layers:
            out.append(layer)
        if known:
            inside.update(id(sub) for sub in layer._flatten_layers(include_self=False))
    return out


def trace_layers(model: keras.Model, x: Any, training: bool) -> list[LayerRecord]:
    """One eager forward pass recording each leaf call in execution order.

    A Dense or Conv2D with a fused ``activation`` gives two records, as the torch
    port's Linear (or Conv2d) and activation module do: the layer's output before
    the activation, then the activation's, named ``<layer> (fused <activation>)``.
    So the layer pairs with torch's layer and the activation with torch's
    activation, and a wrong fused activation is named where it is."""
    calls: list[tuple[keras.layers.Layer, Any, Any, Any]] = []   # layer, fused or None, in, out

    def wrap(layer: keras.layers.Layer, fused: Any):
        call = layer.call

        def traced(*args: Any, **kwargs: Any) -> Any:
            output = call(*args, **kwargs)
            calls.append((layer, None, args[0] if args else None, output))
            if fused is None:
                return output
            activated = fused(output)   # the layer's own activation, held back during the trace
            calls.append((layer, fused, output, activated))
            return activated
        return traced

    wrapped = leaves(model)
    fused = {id(layer): _fused_activation(layer) for layer in wrapped}
    for layer in wrapped:
        object.__setattr__(layer, "call", wrap(layer, fused[id(layer)]))
        if fused[id(layer)] is not None:
            object.__setattr__(layer, "activation", keras.activations.linear)
    try:
        model(x, training=training)
    finally:
        for layer in wrapped:
            object.__delattr__(layer, "call")
            if fused[id(layer)] is not None:
                object.__setattr__(layer, "activation", fused[id(layer)])
    records, counts, flat_from = [], {}, None
    for layer, activation, raw_in, raw_out in calls:
        raw_in, raw_out = _numpy(raw_in), _numpy(raw_out)
        kind = kind_of(layer) if activation is None else activation_kind(activation)
        chw = flat_from if kind == "linear" else None   # a Dense right after a Flatten of images
        counts[id(layer)] = counts.get(id(layer), 0) + (activation is None)
        first = counts[id(layer)] == 1 and activation is None   # a layer owns its tensors once
        name = layer.name if counts[id(layer)] == 1 else f"{layer.name} (call {counts[id(layer)]})"
        params, to_canonical, to_native = _conversion(layer, kind, chw) if first else ((), dict, dict)
        flattened = _image_shape(raw_in) if kind == "flatten" else None
        records.append(LayerRecord(
            name if activation is None else f"{name} (fused {_function_name(activation)})", kind,
            {**config_of(layer, kind, raw_in), **({"flatten_from": chw} if chw else {})},
            params, to_canonical, to_native, _activation(raw_in, chw),
            _activation(raw_out, flattened)))
        flat_from = flattened
    return records


def _fused_activation(layer: keras.layers.Layer) -> Any:
    """The activation a Dense or Conv2D applies to its output, None when linear."""
    activation = getattr(layer, "activation", None)
    fused = kind_of(layer) in ("linear", "conv2d") and activation is not None
    return activation if fused and activation is not keras.activations.linear else None


def _image_shape(raw: np.ndarray | None) -> tuple[int, int, int] | None:
    """(C, H, W) of an NHWC batch, else None."""
    return (raw.shape[3], raw.shape[1], raw.shape[2]) if raw is not None and raw.ndim == 4 else None


def _activation(raw: np.ndarray | None, flat_chw: tuple[int, int, int] | None) -> np.ndarray | None:
    """An activation in canonical layout: NHWC -> NCHW; flattened H, W, C -> C, H, W
    (its features permute as a flat kernel's input rows: the kernel's helper, transposed)."""
    if raw is None:
        return None
    if raw.ndim == 4:
        return raw.transpose(0, 3, 1, 2)
    if flat_chw is not None:
        return layout_to_canonical(("flat", *flat_chw), raw.T)
    return raw


def _conversion(layer: keras.layers.Layer, kind: str, chw: tuple[int, int, int] | None):
    """``(native names, to_canonical, to_native)`` for one layer's variables."""
    if kind == "attention":
        return _attention(layer)
    variables = {v.path: v.name for v in layer.weights if v.dtype.startswith("float")}
    roles = {path: _RENAMES.get(kind, {}).get(name, "weight" if name == "kernel" else name)
             for path, name in variables.items()}
    paths = {role: path for path, role in roles.items()}

    def to_canonical(tensors) -> Arrays:
        return {roles[p]: _kernel(kind, tensors[p], chw, True) if roles[p] == "weight" else tensors[p]
                for p in paths.values()}

    def to_native(arrays) -> Arrays:
        return {p: _kernel(kind, arrays[r], chw, False) if r == "weight" else arrays[r]
                for r, p in paths.items()}

    return tuple(paths.values()), to_canonical, to_native


def _kernel(kind: str, value: np.ndarray, chw: tuple[int, int, int] | None,
            canonical: bool) -> np.ndarray:
    """A kernel between Keras and canonical layout (``canonical``: to canonical)."""
    layout = {"conv2d": "conv", "linear": ("flat", *chw) if chw else "dense"}.get(kind, "")
    return layout_to_canonical(layout, value) if canonical else layout_to_native(layout, value)


def _attention(layer: keras.layers.MultiHeadAttention):
    """MultiHeadAttention's query/key/value kernels (E, H, D) and biases (H, D), output
    kernel (H, D, E) <-> torch's in_proj_weight (3E, E), in_proj_bias, out_proj."""
    dense = [layer._query_dense, layer._key_dense, layer._value_dense]
    out = layer._output_dense
    names = tuple(v.path for d in (*dense, out) for v in (d.kernel, d.bias))

    def to_canonical(t) -> Arrays:
        def rows(k: np.ndarray) -> np.ndarray:   # (E, H, D) -> (H*D, E)
            return k.transpose(1, 2, 0).reshape(-1, k.shape[0])
        return {"in_proj_weight": np.concatenate([rows(t[d.kernel.path]) for d in dense]),
                "in_proj_bias": np.concatenate([t[d.bias.path].reshape(-1) for d in dense]),
                "out_proj.weight": t[out.kernel.path].reshape(-1, out.kernel.shape[-1]).T,
                "out_proj.bias": t[out.bias.path]}

    def to_native(a) -> Arrays:
        e = a["out_proj.bias"].shape[0]
        h, d = layer._query_dense.kernel.shape[1:]
        arrays = {}
        for i, layer_ in enumerate(dense):
            w = a["in_proj_weight"][i * e:(i + 1) * e]
            arrays[layer_.kernel.path] = w.reshape(h, d, e).transpose(2, 0, 1)
            arrays[layer_.bias.path] = a["in_proj_bias"][i * e:(i + 1) * e].reshape(h, d)
        arrays[out.kernel.path] = a["out_proj.weight"].T.reshape(h, d, e)
        arrays[out.bias.path] = a["out_proj.bias"]
        return arrays

    return names, to_canonical, to_native


def _numpy(value: Any) -> np.ndarray | None:
    return None if value is None or not hasattr(value, "numpy") else np.array(value.numpy())
