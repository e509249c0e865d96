"""Containers: models are trees of layer specs.

:class:`Sequential` applies its children in order; :class:`Residual` adds its
body's output to its input (or to a projection shortcut's output). A child's
canonical name is its position or the name it was given, and a tensor's
canonical name is the dotted path to it -- the nested module names of the torch
model crossloop builds, so names read like a torch ``state_dict``
(``layer1.0.conv1.weight``). Shapes are inferred through the tree; an error
names the layer's path and both shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Union

from .layers import ELEMENTWISE, LEAVES, Dropout, Flatten, Leaf, Linear, Shape, Tensor


class ShapeError(ValueError):
    """A model does not fit its input: the message names the layer path and both shapes."""


Layer = Union["Sequential", "Residual", Leaf]


def _children_of(layers: Any) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """(layers, names) from a sequence (named by position) or a name -> layer mapping."""
    if isinstance(layers, Mapping):
        names, layers = tuple(layers), tuple(layers.values())
    else:
        layers = tuple(layers)
        names = tuple(str(i) for i in range(len(layers)))
    bad = [n for n in names if not n or "." in n or n in ("shortcut", "activation")]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"layer names must be unique, non-empty, without '.', and not "
                         f"'shortcut' or 'activation'; got {list(names)}")
    return layers, names


@dataclass(frozen=True)
class Sequential:
    """Layers (a sequence, or a mapping name -> layer) applied in order.

    The model itself is a Sequential of inputs of ``input_shape`` (one sample:
    (C, H, W) images, (T,) token ids, (F,) features); it is checked when built.
    A Sequential inside another takes ``input_shape=None``: its parent checks it.
    """
    layers: tuple[Layer, ...]
    input_shape: Shape | None = (1, 28, 28)
    name: str = "model"
    names: tuple[str, ...] = ()
    num_classes: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        given = dict(zip(self.names, self.layers)) if self.names else self.layers
        layers, names = _children_of(given)
        if not layers:
            raise ValueError(f"Sequential {self.name!r} has no layers: give at least one")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "names", names)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
            shapes = self.shapes()  # validates the tree
            object.__setattr__(self, "num_classes", shapes[-1][-1])

    def children(self) -> list[tuple[str, Layer]]:
        """(name, layer) of the direct children, in order."""
        return list(zip(self.names, self.layers))

    def shapes(self) -> list[Shape]:
        """Output shape (without batch) after each direct child; raises on a mismatch."""
        shape, out = self._input(), []
        for name, child in self.children():
            shape = output_shape(child, shape, name)
            out.append(shape)
        return out

    def output_shape(self, shape: Shape) -> Shape:
        """The per-sample output shape for inputs of ``shape`` (raises on a mismatch)."""
        return output_shape(self, shape, "")

    def tensors(self) -> dict[str, Tensor]:
        """Canonical name -> :class:`Tensor` of every parameter and state tensor."""
        return dict(_tensors(self, ""))

    def param_shapes(self) -> dict[str, Shape]:
        """Canonical name -> canonical shape of every model tensor: trainable parameters
        and non-trainable state (running statistics), in torch ``state_dict`` order."""
        return {name: t.shape for name, t in self.tensors().items()}

    def buffers(self) -> list[str]:
        """Names of the non-trainable model state tensors (e.g. BatchNorm running stats)."""
        return [name for name, t in self.tensors().items() if not t.trainable]

    def trace(self) -> list[tuple[str, Any, Shape]]:
        """(path, leaf layer, its input shape) for every leaf, in execution order."""
        out: list[tuple[str, Any, Shape]] = []
        output_shape(self, self._input(), "", out)
        return out

    def leaves(self) -> list[tuple[str, Any]]:
        """(path, leaf layer) for every leaf, in execution order."""
        return [(path, leaf) for path, leaf, _ in self.trace()]

    def flatten_pairs(self) -> list[tuple[str, str, Shape]]:
        """(Flatten path, Linear path, flattened (C, H, W)) for each Flatten of an image
        whose vector goes (through elementwise layers only) into a Linear.

        Backends that keep activations NHWC flatten in (H, W, C) order: they permute
        these Linear layers' input rows at the parameter boundary instead of the
        activations; any other Flatten of an image must put (C, H, W) order itself.
        """
        pairs, pending = [], None
        for path, leaf, shape in self.trace():
            if isinstance(leaf, Flatten) and len(shape) == 3:
                pending = (path, shape)
            elif isinstance(leaf, Linear) and len(shape) == 1 and pending is not None:
                pairs.append((pending[0], path, pending[1]))
                pending = None
            elif not isinstance(leaf, ELEMENTWISE):
                pending = None
        return pairs

    def flatten_sources(self) -> dict[str, Shape]:
        """For each Linear fed by a Flatten of (C, H, W): its path -> that (C, H, W)
        (see :meth:`flatten_pairs`)."""
        return {linear: chw for _, linear, chw in self.flatten_pairs()}

    def describe(self) -> dict:
        """A JSON-able description, stored beside saved weights and checkpoints."""
        return {"name": self.name, "input_shape": list(self._input()),
                "layers": _describe_children(self)}

    def _input(self) -> Shape:
        if self.input_shape is None:
            raise ValueError(f"{self.name} has input_shape=None: it is a block inside a model, "
                             "not a model; give it the input_shape of one sample")
        return self.input_shape


@dataclass(frozen=True)
class Residual:
    """``activation(body(x) + shortcut(x))``: ``shortcut`` None is the identity (a
    projection such as a strided 1x1 conv + BatchNorm where the shapes change);
    ``activation`` None is none. The body's children are named directly under the
    block (``block.conv1.weight``), the shortcut's under ``block.shortcut``."""
    body: Sequential
    shortcut: Layer | None = None
    activation: Layer | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.body, Sequential):
            object.__setattr__(self, "body", Sequential(self.body, input_shape=None))


def children(layer: Any) -> list[tuple[str, Any]]:
    """(name, child) of a container (empty for a leaf), in the torch module's order."""
    if isinstance(layer, Sequential):
        return layer.children()
    if isinstance(layer, Residual):
        extra = [("shortcut", layer.shortcut), ("activation", layer.activation)]
        return layer.body.children() + [(n, c) for n, c in extra if c is not None]
    return []


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def output_shape(layer: Any, shape: Shape, path: str,
                 trace: list[tuple[str, Any, Shape]] | None = None) -> Shape:
    """The output shape of ``layer`` (at ``path``) for inputs of ``shape``; records every
    leaf's input shape in ``trace``. Errors name the layer path and both shapes."""
    if isinstance(layer, Sequential):
        for name, child in layer.children():
            shape = output_shape(child, shape, _join(path, name), trace)
        return shape
    if isinstance(layer, Residual):
        out = output_shape(layer.body, shape, path, trace)
        skip = (shape if layer.shortcut is None
                else output_shape(layer.shortcut, shape, _join(path, "shortcut"), trace))
        if out != skip:
            raise ShapeError(f"residual {path or 'model'} adds its body's output {out} to its "
                             f"shortcut's {skip}: give it a shortcut that maps {shape} to {out}")
        if layer.activation is not None:
            out = output_shape(layer.activation, out, _join(path, "activation"), trace)
        return out
    where = f"layer {path} ({type(layer).__name__})"
    if not isinstance(layer, LEAVES):
        raise TypeError(f"{where} is not a crossloop.nn layer spec")
    try:
        out = layer.output_shape(shape)
    except ValueError as exc:
        raise ShapeError(f"{where} {exc}") from None
    if min(out, default=1) < 1:
        raise ShapeError(f"{where} turns {shape} into the empty shape {out}")
    if trace is not None:
        trace.append((path, layer, shape))
    return out


def _tensors(layer: Any, path: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(layer, LEAVES):
        for name, tensor in layer.tensors().items():
            yield _join(path, name), tensor
    for name, child in children(layer):
        yield from _tensors(child, _join(path, name))


# Fields added after files were saved with the spec's description, at their default:
# left out of the description, so those files still match the same model.
_LATER = {("bias", True)}


def _describe(layer: Any) -> dict:
    if isinstance(layer, Sequential):
        return {"type": "Sequential", "layers": _describe_children(layer)}
    if isinstance(layer, Residual):
        return {"type": "Residual", "body": _describe_children(layer.body),
                **{k: None if v is None else _describe(v)
                   for k, v in (("shortcut", layer.shortcut), ("activation", layer.activation))}}
    return {"type": type(layer).__name__, **{f.name: getattr(layer, f.name) for f in fields(layer)
                                             if (f.name, getattr(layer, f.name)) not in _LATER}}


def _describe_children(seq: Sequential) -> list[dict]:
    named = seq.names != tuple(str(i) for i in range(len(seq.layers)))
    return [{**_describe(child), **({"name": name} if named else {})}
            for name, child in seq.children()]


def count_params(spec: Sequential, trainable_only: bool = True) -> int:
    """How many numbers the model has (trainable parameters only, by default)."""
    return sum(math.prod(t.shape) for t in spec.tensors().values()
               if t.trainable or not trainable_only)


def without_dropout(layer: Any) -> Any:
    """The same model (names, tensors) with every Dropout at p=0: dropout masks come
    from each framework's own RNG, so parity runs need it off."""
    if isinstance(layer, Sequential):
        return replace(layer, layers=tuple(without_dropout(c) for c in layer.layers))
    if isinstance(layer, Residual):
        return Residual(*(None if c is None else without_dropout(c)
                          for c in (layer.body, layer.shortcut, layer.activation)))
    return Dropout(0.0) if isinstance(layer, Dropout) else layer
