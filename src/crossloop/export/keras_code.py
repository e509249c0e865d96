"""A spec as a Keras file: ``build_model(dtype)`` in Keras's functional style (a
residual block is a saved input and an ``Add``), and ``load_weights``, which
converts crossloop's canonical (torch) layouts to Keras's."""

from __future__ import annotations

import re
from typing import Any

from .. import nn
from .emitter import Site, nhwc
from .lines import Line, layout, wrap
from .table import emitter, helpers, join, sites, tokens


def keras_name(name: str) -> str:
    """``name`` as a Keras model name: Keras (TensorFlow's name scopes) takes letters,
    digits and ``_.-`` only, starting with a letter, digit or dot; a crossloop spec
    takes any name, so the rest become ``_`` (``"my net"`` -> ``"my_net"``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return name if re.match(r"[A-Za-z0-9.]", name) else f"model{name}"


def _calls(layer: Any, path: str, x_in: str, x: str, level: int,
           found: dict[str, Site]) -> list[Line]:
    """The lines that apply ``layer`` (at ``path``) to the variable ``x_in`` and leave
    its output in ``x``; ``level`` counts the residual blocks around it, so a nested
    block's saved input gets a name of its own."""
    if isinstance(layer, nn.Sequential):
        lines = []
        for name, child in layer.children():
            lines += _calls(child, join(path, name), x_in, x, level, found)
            x_in = x
        return lines
    if isinstance(layer, nn.Residual):
        skip = "shortcut" if level == 0 else f"shortcut{level + 1}"
        added = "body(x) + " + ("x" if layer.shortcut is None else "shortcut(x), a projection")
        if layer.activation is not None:
            added = f"{type(layer.activation).__name__.lower()}({added})"
        if layer.shortcut is None:
            lines = [Line(1, f"{skip} = {x_in}")]
        else:
            lines = _calls(layer.shortcut, join(path, "shortcut"), x_in, skip, level + 1, found)
        first = lines[0]
        lines[0] = first._replace(note=". ".join(filter(None, (f"{path}: a residual block, {added}",
                                                               first.note))))
        lines += _calls(layer.body, path, x_in, x, level + 1, found)
        lines.append(Line(1, f"{x} = layers.Add(dtype=dtype)([{x}, {skip}])"))
        if layer.activation is not None:
            lines += _calls(layer.activation, join(path, "activation"), x, x, level, found)
        return lines
    site, kind = found[path], emitter(layer, path)
    exprs = kind.keras(site)
    lines = []
    for k, expr in enumerate(exprs):
        arg = x_in if k == 0 else x
        call = kind.keras_call(site, arg) if k == len(exprs) - 1 else f"({arg})"
        lines.append(Line(1, f"{x} = {expr}{call}", *(
            (f"{path}: {nhwc(site.in_shape)} -> {nhwc(site.out_shape)}", kind.note(site))
            if k == 0 else ())))
    return lines


def keras_source(spec: nn.Sequential) -> str:
    """The spec as a Keras file: ``build_model(dtype)`` and ``load_weights``, which
    converts crossloop's canonical (torch) layouts to Keras's."""
    found = sites(spec)
    body = layout(_calls(spec, "", "inputs", "x", 0, found))
    loads = [line for path, site in found.items() for line in emitter(site.layer, path).weights(site)]
    input_shape = nhwc(spec.input_shape)
    if tokens(spec):
        layout_, input_dtype, example_dtype = "token ids (integers)", '"int64"', "int64"
    else:
        layout_ = ("NHWC, TensorFlow's layout (from NCHW: x.transpose(0, 2, 3, 1))"
                   if len(spec.input_shape) == 3 else "as they are")
        input_dtype, example_dtype = "dtype", "float32"
    example = f'np.zeros(({", ".join(map(str, (2, *input_shape)))}), "{example_dtype}")'
    classes = "".join(source + "\n\n" for source in helpers(found, 1))
    weights = "".join(f'\n    "{name}": {shape},' for name, shape in spec.param_shapes().items())
    return f'''"""The crossloop model spec {spec.name!r} as a plain Keras model.

{wrap(f"Written by `crossloop export`; it needs only Keras. Inputs are {layout_}, "
      f"{input_shape} per sample. Keras's default initialisation (glorot-uniform kernels, "
      "zero biases) differs from torch's; load_weights replaces it with crossloop's "
      "weights, converting torch's layouts to Keras's. Layers are named by crossloop's "
      "canonical (torch) names.")}
"""

import keras
from keras import layers


# The weights load_weights takes: canonical (torch) name -> shape in torch's layout.
WEIGHTS = {{{weights}
}}


{classes}def build_model(dtype: str = "float32") -> keras.Model:
    """The layers in order; shapes are per sample, as Keras holds them."""
    inputs = keras.Input(shape={input_shape}, dtype={input_dtype})
{body}
    return keras.Model(inputs, x, name="{keras_name(spec.name)}")


def load_weights(model: keras.Model, state) -> keras.Model:
    """Load crossloop weights: a mapping of canonical (torch) names to arrays in torch's
    layout, e.g. safetensors.numpy.load_file(path) of a file from crossloop.save_params.
    Raises ValueError naming the tensors missing, extra or of another shape."""
    missing = [name for name in WEIGHTS if name not in state]
    extra = [name for name in state if name not in WEIGHTS]
    reshaped = [f"{{name}} {{tuple(state[name].shape)}} (not {{shape}})"
                for name, shape in WEIGHTS.items()
                if name in state and tuple(state[name].shape) != shape]
    if missing or extra or reshaped:
        raise ValueError(f"these are not this model's weights: missing {{missing}}, extra {{extra}}, "
                         f"shaped otherwise {{reshaped}}; pass the weights of the model exported here")
{layout([Line(1, line) for line in loads]) or "    pass"}
    return model


if __name__ == "__main__":
    import numpy as np

    print(build_model()({example}).shape)
'''
