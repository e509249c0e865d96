"""Export emitters for the normalisation layers (:mod:`crossloop.export`'s table, continued).

BatchNorm and LayerNorm are where the two frameworks' defaults differ most quietly:
momentum's meaning, eps, and which variance the running statistics keep. Each
emitter writes torch's values out explicitly in both files and says so in a comment.
"""

from __future__ import annotations

from . import nn
from .export import Emitter, Site, keras_args


def _batchnorm_torch(site: Site) -> str:
    bn = site.layer
    return f"nn.{type(bn).__name__}({bn.num_features}, eps={bn.eps}, momentum={bn.momentum})"


def _batchnorm_keras(site: Site) -> list[str]:
    bn = site.layer
    return [f"layers.BatchNormalization(momentum={1 - bn.momentum:g}, epsilon={bn.eps}, "
            f"{keras_args(site)})"]


def _batchnorm_weights(site: Site) -> list[str]:
    i = site.path
    return [f"# {i}: gamma, beta, running mean and variance in the same layout",
            f'model.get_layer("{site.name}").set_weights([state["{i}.weight"], '
            f'state["{i}.bias"], state["{i}.running_mean"], state["{i}.running_var"]])']


def _batchnorm_note(site: Site) -> str:
    bn = site.layer
    return (f"torch's momentum={bn.momentum} weighs the new batch, Keras's momentum the old "
            f"value: {1 - bn.momentum:g}. eps={bn.eps} is torch's default (Keras's is 1e-3). "
            "torch updates the running variance with the unbiased batch variance, Keras with "
            "the biased one: the running statistics drift apart in training, not in inference")


NORM_EMITTERS: dict[type, Emitter] = {
    **{cls: Emitter("batchnorm", torch=_batchnorm_torch, keras=_batchnorm_keras,
                    weights=_batchnorm_weights, note=_batchnorm_note)
       for cls in (nn.BatchNorm1d, nn.BatchNorm2d)},
    nn.LayerNorm: Emitter(
        "layernorm", torch=lambda s: f"nn.LayerNorm({s.layer.normalized_shape}, eps={s.layer.eps})",
        keras=lambda s: [f"layers.LayerNormalization(epsilon={s.layer.eps}, {keras_args(s)})"],
        weights=lambda s: [f'model.get_layer("{s.name}").set_weights([state["{s.path}.weight"], '
                           f'state["{s.path}.bias"]])'],
        note=lambda s: f"eps={s.layer.eps} is torch's default; Keras's epsilon is 1e-3"),
}
