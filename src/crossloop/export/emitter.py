"""What an export emitter writes a layer from, and what it says about it.

A :class:`Site` is one leaf layer where it sits in the model (its canonical
path, shapes, the Keras layer name); an :class:`Emitter` says how one layer
type is written in torch and in Keras, how its canonical weights load into the
Keras layer, and where the frameworks differ. The file writers
(:mod:`.torch_code`, :mod:`.keras_code`) walk the containers and ask each
leaf's emitter for its lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Site:
    """One leaf layer where it sits in the model: what an emitter writes it from."""
    layer: Any
    in_shape: Shape                   # canonical: (C, H, W), (T, E), (T,) or (features,)
    out_shape: Shape
    flatten_source: Shape | None      # a Linear fed by a Flatten: the (C, H, W) flattened
    path: str                         # its canonical name: the prefix of its weights' names
    name: str                         # its Keras layer's name (see keras_name)


def keras_name(kind: str, path: str) -> str:
    """The Keras layer name for the leaf at ``path``: the canonical path itself, so
    ``load_weights`` reads ``get_layer("layer1.0.conv1")`` beside
    ``state["layer1.0.conv1.weight"]``; a bare position (``3``) gets its kind in front
    (``conv3``)."""
    return f"{kind}{path}" if path.isdigit() else path


def _no_lines(site: Site) -> list[str]:
    return []


def _no_text(site: Site) -> str:
    return ""


def _call_on(site: Site, x: str) -> str:
    return f"({x})"


@dataclass(frozen=True)
class Emitter:
    """How one layer type is written.

    ``kind``: the start of a positional layer's Keras name; ``torch``: the torch
    module expression; ``keras``: the Keras layer expressions, applied in order (one
    layer may need two, e.g. explicit padding and a convolution); ``keras_call``:
    the arguments the (last) Keras layer is called with, given the input variable
    (attention takes it as query and value); ``weights``: the Keras lines that load
    its canonical weights (none without parameters); ``note``: the comment put
    above the Keras code where the frameworks differ; ``helpers``: source of a class
    or function the (torch, Keras) code uses, written once into the file;
    ``refuse``: why this site cannot be exported ("" when it can)."""
    kind: str
    torch: Callable[[Site], str]
    keras: Callable[[Site], list[str]]
    keras_call: Callable[[Site, str], str] = _call_on
    weights: Callable[[Site], list[str]] = _no_lines
    note: Callable[[Site], str] = _no_text
    helpers: tuple[str, str] = ("", "")
    refuse: Callable[[Site], str] = _no_text


class ExportError(InputError, ValueError):
    """A spec holds a layer export cannot write (its message names the layer), or
    its files are there already."""


def keras_args(site: Site, name: str | None = None) -> str:
    """A Keras layer's ``name`` and ``dtype`` arguments: every layer is named (so
    load_weights finds it) and built in the model's dtype."""
    return f'name="{name or site.name}", dtype=dtype'


def nhwc(shape: Shape) -> Shape:
    """A canonical per-sample shape as Keras holds it: images (H, W, C), others as they are."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape
