"""A model spec as plain native code: a PyTorch module file and a Keras model file.

``crossloop export`` writes the network a spec describes as the code a person
would write by hand in each framework -- no crossloop import -- with a comment
wherever the two frameworks differ (layouts, padding, flatten order, dropout
masks), and a ``load_weights`` in each that takes crossloop's weights
(canonical names and layout, e.g. from ``crossloop.save_params``). So a learner
can read one network in both frameworks, and a user can leave crossloop with
their trained weights.

The code is generated per layer type by :data:`EMITTERS`: one :class:`Emitter`
entry says how a layer type is written in torch, in Keras, and how its
canonical weights load into the Keras layer. A new layer type is one entry.
Containers (a residual block, nesting) fit the same shape: their emitters
write a nested expression from their children's emitters.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import nn
from .errors import InputError
from .files import atomic_write

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Site:
    """One layer where it sits in the model: what an emitter writes it from."""
    index: int
    layer: Any
    in_shape: Shape                   # canonical: (C, H, W) or (features,)
    out_shape: Shape
    flatten_source: Shape | None      # a Linear fed by a Flatten: the (C, H, W) flattened
    path: str                         # its canonical name: the prefix of its weights' names

    @property
    def name(self) -> str:
        """The Keras layer's name: its kind and its index in the spec (``conv0``)."""
        return f"{_emitter(self).kind}{self.index}"


@dataclass(frozen=True)
class Emitter:
    """How one layer type is written: ``kind`` (the start of its Keras layer's name),
    the torch module expression, the Keras layer expressions (one layer may need two,
    e.g. explicit padding and a convolution), and the Keras lines that load its
    canonical weights (none without parameters). ``note`` is the comment put above
    the Keras code where the frameworks differ."""
    kind: str
    torch: Callable[[Site], str]
    keras: Callable[[Site], list[str]]
    weights: Callable[[Site], list[str]] = lambda site: []
    note: Callable[[Site], str] = lambda site: ""


def keras_args(site: Site, name: str | None = None) -> str:
    """A Keras layer's ``name`` and ``dtype`` arguments: every layer is named (so
    load_weights finds it) and built in the model's dtype."""
    return f'name="{name or site.name}", dtype=dtype'


def _stride(layer: Any) -> str:
    return "" if layer.stride is None else f", stride={layer.stride}"


def _keras_stride(layer: Any) -> str:
    return "" if layer.stride is None else f", strides={layer.stride}"


def _same(layer: nn.Conv2d) -> bool:
    """Whether Keras's ``"same"`` pads as torch's symmetric ``padding`` does."""
    return layer.stride == 1 and 2 * layer.padding == layer.kernel_size - 1


def _conv_torch(site: Site) -> str:
    c = site.layer
    stride = f", stride={c.stride}" if c.stride != 1 else ""  # torch's defaults left out
    padding = f", padding={c.padding}" if c.padding else ""
    return f"nn.Conv2d({c.in_channels}, {c.out_channels}, kernel_size={c.kernel_size}{stride}{padding})"


def _conv_keras(site: Site) -> list[str]:
    c = site.layer
    strides = f", strides={c.stride}" if c.stride != 1 else ""
    conv = f"layers.Conv2D({c.out_channels}, {c.kernel_size}{strides}, padding="
    if c.padding and _same(c):
        return [conv + f'"same", {keras_args(site)})']
    pad = ([f'layers.ZeroPadding2D({c.padding}, {keras_args(site, f"pad{site.index}")})']
           if c.padding else [])
    return pad + [conv + f'"valid", {keras_args(site)})']


def _conv_note(site: Site) -> str:
    c = site.layer
    if not c.padding:
        return ""
    if _same(c):
        return (f"torch padding={c.padding} with a {c.kernel_size}x{c.kernel_size} kernel at "
                'stride 1 is Keras\'s "same"')
    return ('explicit zero padding, as torch\'s: Keras\'s "same" would pad asymmetrically '
            "(more after) at stride > 1")


def _conv_weights(site: Site) -> list[str]:
    i = site.path
    return [f"# {i}: kernel torch (out, in, kH, kW) -> Keras (kH, kW, in, out)",
            f'model.get_layer("{site.name}").set_weights([state["{i}.weight"].transpose(2, 3, 1, 0), '
            f'state["{i}.bias"]])']


def _linear_weights(site: Site) -> list[str]:
    i, lin = site.path, site.layer
    if site.flatten_source is None:
        return [f"# {i}: weight torch (out, in) -> Keras (in, out)",
                f'model.get_layer("{site.name}").set_weights([state["{i}.weight"].T, '
                f'state["{i}.bias"]])']
    c, h, w = site.flatten_source
    return [f"# {i}: torch flattened (C, H, W) = ({c}, {h}, {w}), Keras flattens (H, W, C):",
            "# reorder the weight's inputs, then (out, in) -> (in, out)",
            f'w = state["{i}.weight"].reshape({lin.out_features}, {c}, {h}, {w})'
            f".transpose(0, 2, 3, 1).reshape({lin.out_features}, {lin.in_features})",
            f'model.get_layer("{site.name}").set_weights([w.T, state["{i}.bias"]])']


EMITTERS: dict[type, Emitter] = {
    nn.Conv2d: Emitter(
        "conv", torch=_conv_torch,
        keras=_conv_keras, weights=_conv_weights, note=_conv_note),
    nn.Linear: Emitter(
        "dense", torch=lambda s: f"nn.Linear({s.layer.in_features}, {s.layer.out_features})",
        keras=lambda s: [f"layers.Dense({s.layer.out_features}, {keras_args(s)})"],
        weights=_linear_weights),
    nn.ReLU: Emitter("relu", torch=lambda s: "nn.ReLU()",
                     keras=lambda s: [f"layers.ReLU({keras_args(s)})"]),
    nn.MaxPool2d: Emitter(
        "maxpool", torch=lambda s: f"nn.MaxPool2d({s.layer.kernel_size}{_stride(s.layer)})",
        keras=lambda s: [f"layers.MaxPooling2D({s.layer.kernel_size}{_keras_stride(s.layer)}, "
                         f"{keras_args(s)})"]),
    nn.AvgPool2d: Emitter(
        "avgpool", torch=lambda s: f"nn.AvgPool2d({s.layer.kernel_size}{_stride(s.layer)})",
        keras=lambda s: [f"layers.AveragePooling2D({s.layer.kernel_size}"
                         f"{_keras_stride(s.layer)}, {keras_args(s)})"]),
    nn.Flatten: Emitter(
        "flatten", torch=lambda s: "nn.Flatten()", keras=lambda s: [f"layers.Flatten({keras_args(s)})"],
        note=lambda s: ("flattens (H, W, C), torch (C, H, W): load_weights reorders the next "
                        "Dense's inputs" if len(s.in_shape) == 3 else "")),
    nn.Dropout: Emitter(
        "dropout", torch=lambda s: f"nn.Dropout(p={s.layer.p})",
        keras=lambda s: [f"layers.Dropout({s.layer.p}, {keras_args(s)})"],
        note=lambda s: "masks come from Keras's random generator, not torch's: identical "
                       "only in inference (or with p=0)"),
}


def sites(spec: nn.Sequential) -> list[Site]:
    """Every layer of ``spec`` with its input and output shapes."""
    shapes = [spec.input_shape, *spec.shapes()]
    sources = spec.flatten_sources()
    return [Site(i, layer, shapes[i], shapes[i + 1], sources.get(name), name)
            for i, (name, layer) in enumerate(spec.children())]


class ExportError(InputError, ValueError):
    """A spec holds a layer type that export cannot write yet."""


def _emitter(site: Site) -> Emitter:
    if type(site.layer) not in EMITTERS:
        raise ExportError(
            f"crossloop export cannot write layer {site.path!r} ({type(site.layer).__name__}) "
            f"yet: it writes {', '.join(sorted(t.__name__ for t in EMITTERS))}; nested "
            "containers (Residual, Sequential), embeddings and attention are not exported")
    return EMITTERS[type(site.layer)]


def class_name(spec: nn.Sequential) -> str:
    """A Python class name for the spec's name (``lenet5`` -> ``Lenet5``)."""
    name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", spec.name))
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"Model{name}"


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, 88))


def _nhwc(shape: Shape) -> Shape:
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


def _aligned(rows: list[tuple[str, str, str]], indent: str) -> list[str]:
    """Code lines, each with its comment in one column and its note (where the
    frameworks differ) as a comment line above it."""
    width = max(len(code) for code, _, _ in rows)
    lines = []
    for code, comment, note in rows:
        lines += [f"{indent}# {line}" for line in textwrap.wrap(note, 88 - len(indent))]
        lines.append(f"{indent}{code:<{width}}  # {comment}" if comment else f"{indent}{code}")
    return lines


def torch_source(spec: nn.Sequential) -> str:
    """The spec as a PyTorch file: an ``nn.Sequential`` subclass (so its state-dict
    names are crossloop's canonical names) and ``load_weights``."""
    cls, rows = class_name(spec), []
    named = any(site.path != str(site.index) for site in sites(spec))  # children with names
    for site in sites(spec):
        code = _emitter(site).torch(site)
        rows.append((f'("{site.path}", {code}),' if named else code + ",",
                     f"{site.index}: {site.in_shape} -> {site.out_shape}", ""))
    start, end = ("OrderedDict([", "])") if named else ("", "")
    example = ", ".join(map(str, (2, *spec.input_shape)))
    return f'''"""{cls}: the crossloop model spec {spec.name!r} as a plain PyTorch module.

{_wrap(f"Written by `crossloop export`; it needs only torch. Inputs are NCHW, "
        f"{spec.input_shape} per sample; parameter names and layouts are crossloop's "
        "canonical ones (torch's), so crossloop weights load as they are. Initialisation "
        "is torch's default (kaiming-uniform); crossloop draws its own weights in NumPy, "
        "and load_weights replaces these.")}
"""

{"from collections import OrderedDict" + chr(10) + chr(10) if named else ""}import torch
from torch import nn


class {cls}(nn.Sequential):
    """The layers in order; shapes are per sample, (C, H, W) or (features,)."""

    def __init__(self):
        super().__init__({start}
{chr(10).join(_aligned(rows, " " * 12))}
        {end})


def load_weights(model: nn.Module, state) -> nn.Module:
    """Load crossloop weights: a mapping of canonical names to arrays, e.g.
    safetensors.numpy.load_file(path) of a file written by crossloop.save_params."""
    # merged into the module's own state: torch's BatchNorm also keeps num_batches_tracked,
    # which crossloop does not (it matters only with momentum=None)
    model.load_state_dict({{**model.state_dict(),
                           **{{name: torch.as_tensor(value) for name, value in state.items()}}}})
    return model


if __name__ == "__main__":
    print({cls}()(torch.zeros({example})).shape)
'''


def keras_source(spec: nn.Sequential) -> str:
    """The spec as a Keras file: ``build_model(dtype)`` and ``load_weights``, which
    converts crossloop's canonical (torch) layouts to Keras's."""
    rows, loads = [], []
    for site in sites(spec):
        emitter = _emitter(site)
        shapes = f"{site.index}: {_nhwc(site.in_shape)} -> {_nhwc(site.out_shape)}"
        for k, code in enumerate(emitter.keras(site)):
            rows.append((code + ",", shapes if k == 0 else "", emitter.note(site) if k == 0 else ""))
        loads += emitter.weights(site)
    input_shape = _nhwc(spec.input_shape)
    layout = ("NHWC, TensorFlow's layout (from NCHW: x.transpose(0, 2, 3, 1))"
              if len(spec.input_shape) == 3 else "as they are")
    example = ", ".join(map(str, (2, *input_shape)))
    return f'''"""The crossloop model spec {spec.name!r} as a plain Keras model.

{_wrap(f"Written by `crossloop export`; it needs only Keras. Inputs are {layout}, "
        f"{input_shape} per sample. Keras's default initialisation (glorot-uniform kernels, "
        "zero biases) differs from torch's; load_weights replaces it with crossloop's "
        "weights, converting torch's layouts to Keras's.")}
"""

import keras
from keras import layers


def build_model(dtype: str = "float32") -> keras.Sequential:
    """The layers in order; shapes are per sample, (H, W, C) or (features,)."""
    return keras.Sequential([
        keras.Input(shape={input_shape}, dtype=dtype),
{chr(10).join(_aligned(rows, " " * 8))}
    ], name="{spec.name}")


def load_weights(model: keras.Model, state) -> keras.Model:
    """Load crossloop weights: a mapping of canonical (torch) names to arrays in torch's
    layout, e.g. safetensors.numpy.load_file(path) of a file from crossloop.save_params."""
{chr(10).join("    " + line for line in loads) or "    pass"}
    return model


if __name__ == "__main__":
    import numpy as np

    print(build_model()(np.zeros(({example}), "float32")).shape)
'''


def write(spec: nn.Sequential, folder: str | Path) -> tuple[Path, Path]:
    """Write ``<folder>/<name>_torch.py`` and ``<folder>/<name>_keras.py``; return both."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"\W+", "_", spec.name).strip("_").lower() or "model"
    paths = folder / f"{stem}_torch.py", folder / f"{stem}_keras.py"
    for path, text in zip(paths, (torch_source(spec), keras_source(spec))):
        atomic_write(path, lambda f, text=text: f.write(text.encode("utf-8")))
    return paths


from .export_layers import LAYER_EMITTERS  # noqa: E402  (its emitters build on this module's)

EMITTERS.update(LAYER_EMITTERS)
