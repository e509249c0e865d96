"""The emitter table (one :class:`Emitter` per leaf layer type) and the sites of a spec.

A new layer type is one entry in one of the emitter modules; containers
(:class:`nn.Sequential`, :class:`nn.Residual`) are written by the file writers
from their children's emitters.
"""

from __future__ import annotations

from typing import Any

from .. import nn
from .emitter import Emitter, ExportError, Site, keras_name
from .layers import LAYER_EMITTERS
from .norms import NORM_EMITTERS
from .sequences import SEQUENCE_EMITTERS

EMITTERS: dict[type, Emitter] = {**LAYER_EMITTERS, **NORM_EMITTERS, **SEQUENCE_EMITTERS}


def emitter(layer: Any, path: str) -> Emitter:
    """The emitter for the leaf ``layer`` at ``path``; an :class:`ExportError` naming
    it for a layer type no emitter writes."""
    if type(layer) not in EMITTERS:
        raise ExportError(
            f"crossloop export cannot write layer {path!r} ({type(layer).__name__}): it writes "
            f"{', '.join(sorted(t.__name__ for t in EMITTERS))}, in Sequential and Residual "
            "containers")
    return EMITTERS[type(layer)]


def sites(spec: nn.Sequential) -> dict[str, Site]:
    """Every leaf of ``spec`` by its canonical path, with its shapes and Keras name; an
    :class:`ExportError` for the first leaf export cannot write."""
    linears = spec.flatten_sources()
    flattens = {flatten: chw for flatten, _, chw in spec.flatten_pairs()}
    found = {}
    for path, layer, shape in spec.trace():
        kind = emitter(layer, path)
        site = Site(layer, shape, layer.output_shape(shape), linears.get(path, flattens.get(path)),
                    path, keras_name(kind.kind, path))
        reason = kind.refuse(site)
        if reason:
            raise ExportError(f"crossloop export cannot write layer {path!r} "
                              f"({type(layer).__name__}): {reason}")
        found[path] = site
    return found


def join(path: str, name: str) -> str:
    """The canonical path of a child ``name`` of the container at ``path``."""
    return f"{path}.{name}" if path else name


def tokens(spec: nn.Sequential) -> bool:
    """Whether the model takes token ids (its first layer is an Embedding)."""
    return isinstance(spec.leaves()[0][1], nn.Embedding)


def helpers(found: dict[str, Site], framework: int) -> list[str]:
    """The helper sources (``framework`` 0: torch, 1: Keras) the sites' code uses, once
    each, in the order first used."""
    sources = (emitter(site.layer, path).helpers[framework] for path, site in found.items())
    return list(dict.fromkeys(source for source in sources if source))
