"""A spec as a PyTorch file: an ``nn.Sequential`` subclass whose nested modules are
named as crossloop's canonical names, so its state dict is crossloop's, and
``load_weights``."""

from __future__ import annotations

import keyword
import re
from typing import Any

from .. import nn
from .emitter import Site
from .lines import Line, layout, wrap
from .table import emitter, helpers, join, sites, tokens

_RESIDUAL = '''class Residual(nn.Module):
    """activation(body(x) + shortcut(x)), the shortcut the identity when None. The body's
    layers are this module's own children, so their weights are named block.conv1.weight
    (as crossloop names them); a projection shortcut is block.shortcut."""

    def __init__(self, body: OrderedDict, shortcut: nn.Module | None = None,
                 activation: nn.Module | None = None):
        super().__init__()
        for name, module in body.items():
            self.add_module(name, module)
        self.body = list(body)
        self.shortcut, self.activation = shortcut, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for name in self.body:
            out = getattr(self, name)(out)
        out = out + (x if self.shortcut is None else self.shortcut(x))
        return out if self.activation is None else self.activation(out)
'''


def class_name(spec: nn.Sequential) -> str:
    """A Python class name for the spec's name (``lenet5`` -> ``Lenet5``)."""
    name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", spec.name))
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"Model{name}"


def _named(seq: nn.Sequential) -> bool:
    """Whether a Sequential's children have names of their own (not just positions)."""
    return seq.names != tuple(str(i) for i in range(len(seq.layers)))


def _children(seq: nn.Sequential, path: str, depth: int, named: bool,
              found: dict[str, Site]) -> list[Line]:
    """The lines of a Sequential's (or a residual body's) children, as arguments."""
    lines = []
    for name, child in seq.children():
        lead, tail = (f'("{name}", ', "),") if named else ("", ",")
        lines += _module(child, join(path, name), depth, lead, tail, found)
    return lines


def _module(layer: Any, path: str, depth: int, lead: str, tail: str,
            found: dict[str, Site]) -> list[Line]:
    """The lines of the torch module expression for ``layer``, between ``lead`` (its
    name, or a keyword) and ``tail``."""
    if isinstance(layer, nn.Sequential):
        named = _named(layer)
        start, end = ("nn.Sequential(OrderedDict([", "]))") if named else ("nn.Sequential(", ")")
        return [Line(depth, lead + start), *_children(layer, path, depth + 1, named, found),
                Line(depth, end + tail)]
    if isinstance(layer, nn.Residual):
        lines = [Line(depth, lead + "Residual("), Line(depth + 1, "OrderedDict(["),
                 *_children(layer.body, path, depth + 2, True, found), Line(depth + 1, "]),")]
        for keyword_, child in (("shortcut", layer.shortcut), ("activation", layer.activation)):
            if child is not None:
                lines += _module(child, join(path, keyword_), depth + 1, f"{keyword_}=", ",",
                                 found)
        return lines + [Line(depth, ")" + tail)]
    site = found[path]
    return [Line(depth, lead + emitter(layer, path).torch(site) + tail,
                 f"{path}: {site.in_shape} -> {site.out_shape}")]


def _has_residual(layer: Any) -> bool:
    return isinstance(layer, nn.Residual) or any(_has_residual(c) for _, c in nn.children(layer))


def _inputs(spec: nn.Sequential) -> str:
    if tokens(spec):
        return f"token ids (int64), {spec.input_shape} per sample"
    return f"{'NCHW' if len(spec.input_shape) == 3 else 'as they are'}, {spec.input_shape} per sample"


def torch_source(spec: nn.Sequential) -> str:
    """The spec as a PyTorch file: an ``nn.Sequential`` subclass (so its state-dict
    names are crossloop's canonical names) and ``load_weights``."""
    found = sites(spec)
    cls, named = class_name(spec), _named(spec)
    body = layout([Line(2, "super().__init__(OrderedDict([" if named else "super().__init__("),
                   *_children(spec, "", 3, named, found), Line(2, "]))" if named else ")")])
    classes = [_RESIDUAL] * _has_residual(spec) + helpers(found, 0)
    example = (f"torch.zeros(2, {spec.input_shape[0]}, dtype=torch.long)" if tokens(spec)
               else f"torch.zeros({', '.join(map(str, (2, *spec.input_shape)))})")
    ordered = "from collections import OrderedDict\n\n" if "OrderedDict(" in body else ""
    return f'''"""{cls}: the crossloop model spec {spec.name!r} as a plain PyTorch module.

{wrap(f"Written by `crossloop export`; it needs only torch. Inputs are {_inputs(spec)}; "
      "parameter names and layouts are crossloop's canonical ones (torch's), so crossloop "
      "weights load as they are. Initialisation is torch's default (kaiming-uniform); "
      "crossloop draws its own weights in NumPy, and load_weights replaces these.")}
"""

{ordered}import torch
from torch import nn


{"".join(source + chr(10) + chr(10) for source in classes)}class {cls}(nn.Sequential):
    """The layers in order; shapes are per sample, as torch holds them."""

    def __init__(self):
{body}


def load_weights(model: nn.Module, state) -> nn.Module:
    """Load crossloop weights: a mapping of canonical names to arrays, e.g.
    safetensors.numpy.load_file(path) of a file written by crossloop.save_params."""
    # merged into the module's own state: torch's BatchNorm also keeps num_batches_tracked,
    # which crossloop does not (it matters only with momentum=None)
    model.load_state_dict({{**model.state_dict(),
                           **{{name: torch.as_tensor(value) for name, value in state.items()}}}})
    return model


if __name__ == "__main__":
    print({cls}()({example}).shape)
'''
