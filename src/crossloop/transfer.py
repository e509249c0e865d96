"""Weight transfer between native models of two frameworks: a torch ``nn.Module``'s
weights into a ``keras.Model`` or back, exactly.

``transfer_weights(src, dst)`` traces one forward pass of each model (in
inference mode: nothing changes) to list their layer calls in execution order
(:mod:`crossloop.tracing`), pairs the layers that hold tensors, converts each
pair's tensors through the canonical layout (torch's) and writes them into
``dst``. With ``weight_map="auto"`` the parametric layers pair in order when
both models have the same sequence of layer kinds and every pair's canonical
shapes agree; otherwise :class:`PairingError` stops with a table of both
models' layers, and an explicit map -- a dict ``{src layer: dst layer}`` or a
function from a src layer's name to a dst layer's name -- says how they pair.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .backend import Backend
from .errors import InputError
from .native import NativeModelError, framework_of
from .registry import get_backend
from .tracing import LayerRecord

WeightMap = str | Mapping[str, str] | Callable[[str], str]
Pairs = list[tuple[LayerRecord, LayerRecord]]


class PairingError(InputError, ValueError):
    """The layers of two models cannot be paired as asked; the message holds a table
    of both models' layers and how to give an explicit map."""


def backend_for(model: Any) -> Backend:
    """The CPU backend of a native model's framework."""
    name = framework_of(model)
    if name is None:
        raise NativeModelError(f"{type(model).__name__} is neither a torch.nn.Module nor a "
                               "keras.Model")
    return get_backend(name, device="cpu")


def trace(model: Any, inputs: np.ndarray, training: bool = False,
          ) -> tuple[Backend, list[LayerRecord], dict[str, np.ndarray]]:
    """``(backend, layer records, tensors by native name)`` of one forward pass of
    ``model`` on ``inputs`` (canonical layout: NCHW images)."""
    backend = backend_for(model)
    records = backend.trace_layers(model, backend.to_device(np.asarray(inputs)), training)
    return backend, records, backend.get_params(model)


def parametric(records: list[LayerRecord]) -> list[LayerRecord]:
    """The records of layer calls that hold parameters: the ones weights transfer between."""
    return [r for r in records if r.params]


def pair_layers(src: list[LayerRecord], dst: list[LayerRecord], src_tensors: Mapping[str, Any],
                dst_tensors: Mapping[str, Any], weight_map: WeightMap = "auto") -> Pairs:
    """Pair the layers that hold tensors, checked kind by kind and shape by shape."""
    a, b = parametric(src), parametric(dst)
    if isinstance(weight_map, str):
        if weight_map != "auto":
            raise ValueError(f"weight_map must be 'auto', a dict or a function, got {weight_map!r}")
        if [r.kind for r in a] != [r.kind for r in b]:
            raise PairingError(_ask("the two models' layers that hold tensors differ in kind or "
                                    "number, so pairing them in order is ambiguous", a, b,
                                    src_tensors, dst_tensors))
        pairs = list(zip(a, b))
    else:
        lookup = weight_map.get if isinstance(weight_map, Mapping) else weight_map
        names = {r.name for r in a}
        unknown = [name for name in weight_map if name not in names] \
            if isinstance(weight_map, Mapping) else []
        if unknown:
            raise PairingError(_ask(f"the map names {unknown[0]!r}, which is not a layer with "
                                    "tensors of the first model", a, b, src_tensors, dst_tensors))
        by_name = {r.name: r for r in b}
        pairs = []
        for record in a:
            target = lookup(record.name)
            if target is None:
                continue
            if target not in by_name:
                raise PairingError(_ask(f"the map sends {record.name!r} to {target!r}, which is "
                                        "not a layer with tensors of the second model", a, b,
                                        src_tensors, dst_tensors))
            pairs.append((record, by_name[target]))
    for s, d in pairs:
        if s.shapes(src_tensors) != d.shapes(dst_tensors):
            raise PairingError(_ask(f"{s.name!r} ({s.kind}) and {d.name!r} ({d.kind}) hold tensors "
                                    f"of different canonical shapes: {s.shapes(src_tensors)} vs "
                                    f"{d.shapes(dst_tensors)}", a, b, src_tensors, dst_tensors))
    return pairs


def unpaired(records: list[LayerRecord], pairs: Pairs, side: int) -> list[str]:
    """The names of the layers with tensors among ``records`` that no pair holds on
    ``side`` (0: the first model's, 1: the second's): a map left them out."""
    paired = {id(pair[side]) for pair in pairs}
    return [r.name for r in parametric(records) if id(r) not in paired]


def layer_table(a: list[LayerRecord], b: list[LayerRecord], a_tensors: Mapping[str, Any],
                b_tensors: Mapping[str, Any]) -> str:
    """Both models' layers that hold tensors, side by side in execution order."""
    def cell(records: list[LayerRecord], i: int, tensors: Mapping[str, Any]) -> str:
        if i >= len(records):
            return ""
        r = records[i]
        shapes = " ".join("x".join(map(str, s)) for s in r.shapes(tensors).values())
        return f"{r.name} [{r.kind}] {shapes}"
    rows = [("#", "first model", "second model")]
    rows += [(str(i), cell(a, i, a_tensors), cell(b, i, b_tensors))
             for i in range(max(len(a), len(b)))]
    width = [max(len(row[c]) for row in rows) for c in range(3)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, width)).rstrip() for row in rows)


def _ask(reason: str, a: list[LayerRecord], b: list[LayerRecord], a_tensors: Mapping[str, Any],
         b_tensors: Mapping[str, Any]) -> str:
    return (f"cannot pair the layers: {reason}.\n{layer_table(a, b, a_tensors, b_tensors)}\n"
            "Give weight_map= a dict {first model's layer: second model's layer} or a function "
            "of the first model's layer name (returning None skips a layer).")


def transfer_weights(src: Any, dst: Any, weight_map: WeightMap = "auto", *,
                     inputs: np.ndarray | None = None) -> Pairs:
    """Copy ``src``'s weights (and BatchNorm statistics) into ``dst``, exactly; return
    the layer pairs. One model is torch, the other Keras (either way round).

    ``inputs`` is an example batch in canonical layout (NCHW images, token ids)
    for the tracing forward pass; it may be left out when ``dst`` or ``src`` is a
    functional Keras model (its inputs say their shape). Raises
    :class:`PairingError` with a table of both models' layers when the layers
    cannot be paired as asked. A map may leave layers out on purpose (their weights
    set otherwise); a warning names the ``dst`` layers it leaves without weights.
    """
    if inputs is None:
        inputs = _example_input(src, dst)
    src_backend, src_records, src_tensors = trace(src, inputs)
    dst_backend, dst_records, dst_tensors = trace(dst, inputs)
    pairs = pair_layers(src_records, dst_records, src_tensors, dst_tensors, weight_map)
    left = unpaired(dst_records, pairs, 1)
    if left:
        warnings.warn(f"transfer_weights: the weight_map pairs no {src_backend.name} layer with "
                      f"{', '.join(map(repr, left))} of the {dst_backend.name} model, which keep "
                      "the weights they had; map them to transfer theirs", UserWarning, stacklevel=2)
    new = dict(dst_tensors)
    for s, d in pairs:
        for name, value in d.to_native(s.canonical(src_tensors)).items():
            new[name] = np.asarray(value, dtype=dst_tensors[name].dtype)
    dst_backend.set_params(dst, new)
    return pairs


def input_shape(model: Any) -> tuple[int | None, ...] | None:
    """A functional Keras model's per-sample input shape in canonical layout (an
    image's (H, W, C) as (C, H, W)); None where the model does not say it."""
    for spec in getattr(model, "inputs", None) or []:
        shape = tuple(spec.shape[1:])
        return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
    return None


def _example_input(*models: Any) -> np.ndarray:
    """A zero batch shaped like a functional Keras model's input, in canonical layout."""
    for model in models:
        shape = input_shape(model)
        if shape is not None and None not in shape:
            return np.zeros((2, *shape), dtype=str(model.inputs[0].dtype))
    raise ValueError("transfer_weights needs inputs=, an example batch (NCHW images, token ids), "
                     "to trace the models: neither is a functional Keras model with known inputs")
