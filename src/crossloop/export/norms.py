"""Export emitters for normalisation and GELU.

BatchNorm, LayerNorm and GELU are where the two frameworks' defaults differ most
quietly: momentum's meaning, eps, which variance the running statistics keep, and
float32 constants in Keras's gelu. Each emitter writes torch's values out explicitly
in both files and says so in a comment.
"""

from __future__ import annotations

import math

from .. import nn
from .emitter import Emitter, Site, keras_args
from .layers import last_axis_on_images


def _batchnorm_torch(site: Site) -> str:
    bn = site.layer
    return f"nn.{type(bn).__name__}({bn.num_features}, eps={bn.eps}, momentum={bn.momentum})"


def _batchnorm_keras(site: Site) -> list[str]:
    bn = site.layer
    axis = "axis=1, " if len(site.in_shape) == 2 else ""  # (N, C, L): channels on axis 1
    return [f"layers.BatchNormalization({axis}momentum={1 - bn.momentum:g}, epsilon={bn.eps}, "
            f"{keras_args(site)})"]


def _batchnorm_weights(site: Site) -> list[str]:
    i = site.path
    return [f"# {i}: gamma, beta, running mean and variance in the same layout",
            f'model.get_layer("{site.name}").set_weights([state[f"{i}.{{k}}"] for k in '
            '("weight", "bias", "running_mean", "running_var")])']


def _eps(eps: float) -> str:
    """eps, said as torch's default (1e-5) or as the spec's own value."""
    return f"eps={eps} is torch's default" if eps == 1e-5 else f"eps={eps} as the spec says"


def _batchnorm_note(site: Site) -> str:
    bn = site.layer
    return (f"torch's momentum={bn.momentum} weighs the new batch, Keras's momentum the old "
            f"value: {1 - bn.momentum:g}. {_eps(bn.eps)} (Keras's is 1e-3). "
            "torch updates the running variance with the unbiased batch variance, Keras with "
            "the biased one: the running statistics drift apart in training, not in inference")


def _gelu_keras(site: Site) -> list[str]:
    if site.layer.approximate == "tanh":
        inner = f"keras.ops.tanh({math.sqrt(2 / math.pi)!r} * (x + 0.044715 * x ** 3))"
    else:
        inner = f"keras.ops.erf(x * {1 / math.sqrt(2)!r})"
    return [f"layers.Lambda(lambda x: 0.5 * x * (1 + {inner}), {keras_args(site)})"]


NORM_EMITTERS: dict[type, Emitter] = {
    **{cls: Emitter("batchnorm", torch=_batchnorm_torch, keras=_batchnorm_keras,
                    weights=_batchnorm_weights, note=_batchnorm_note)
       for cls in (nn.BatchNorm1d, nn.BatchNorm2d)},
    nn.LayerNorm: Emitter(
        "layernorm", torch=lambda s: f"nn.LayerNorm({s.layer.normalized_shape}, eps={s.layer.eps})",
        keras=lambda s: [f"layers.LayerNormalization(epsilon={s.layer.eps}, {keras_args(s)})"],
        weights=lambda s: [f'model.get_layer("{s.name}").set_weights([state["{s.path}.weight"], '
                           f'state["{s.path}.bias"]])'],
        note=lambda s: f"{_eps(s.layer.eps)}; Keras's epsilon is 1e-3",
        refuse=last_axis_on_images),
    nn.GELU: Emitter(
        "gelu", torch=lambda s: ('nn.GELU(approximate="tanh")' if s.layer.approximate == "tanh"
                                 else "nn.GELU()"),
        keras=_gelu_keras,
        note=lambda s: "torch's GELU with float64-exact constants: keras.activations.gelu "
                       "uses float32 ones (~5e-9 off in float64)"),
}
