"""Likely causes of a divergence, read from the two layers' settings, their weights
right after the transfer, their numbers, or the two optimizers' settings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..tracing import LayerRecord


def layer_causes(t: LayerRecord, k: LayerRecord, tensor: str = "") -> list[str]:
    """Settings of a paired torch and Keras layer that make them compute differently
    (``tensor``: the pair's first diverging tensor, where that tells more)."""
    tc, kc = t.config, k.config
    if t.kind != k.kind:
        return [f"torch's {t.name} computes {t.kind}, Keras's {k.name} {k.kind}"]
    if t.kind == "batchnorm" and tc["momentum"] != kc["momentum"]:
        return [f"BatchNorm: {tc['native']}, {kc['native']} (torch counts momentum on the new "
                "batch: Keras momentum = 1 - torch momentum)"]
    if t.kind == "batchnorm" and tc["eps"] != kc["eps"]:
        return [f"BatchNorm: torch eps {tc['eps']:g}, Keras epsilon {kc['eps']:g} (the momenta "
                "agree)"]
    if t.kind == "batchnorm" and tensor == "running_var" and kc["running_var"] == "biased":
        return ["BatchNorm: torch updates running_var with the unbiased batch variance (n/(n-1) "
                "times the biased one), Keras's BatchNormalization with the biased one, whatever "
                "its settings: override its call (examples/porting/resnet.py's TorchBatchNorm)"]
    if t.kind == "layernorm" and tc["eps"] != kc["eps"]:
        return [f"LayerNorm: {tc['native']}, {kc['native']}"]
    if t.kind == "conv2d" and tc["padding"] != kc["padding"] and kc["padding"] != (0, 0, 0, 0):
        return [f"Conv2D {kc['native']} pads (top, bottom, left, right) {kc['padding']}, torch "
                f"{tc['padding']}: at stride {kc['stride']} 'same' pads the bottom and right only; "
                f"use ZeroPadding2D and padding='valid'"]
    if t.kind == "attention" and tc["heads"] != kc["heads"]:
        return [f"attention: {tc['native']}, {kc['native']}"]
    if t.kind == "gelu" and t.input is not None and k.output is not None:
        return _gelu(t, k)
    return []


def _gelu(t: LayerRecord, k: LayerRecord) -> list[str]:
    x = np.asarray(t.input, np.float64)
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    close = {name: float(np.max(np.abs(k.output - f))) for name, f in
             (("tanh approximation", tanh), ("exact (erf)", exact))}
    keras_is = min(close, key=close.get)
    if keras_is == "tanh approximation":
        return [f"GELU: Keras computes the tanh approximation (max {close[keras_is]:.1e} from it; "
                f"keras.ops.gelu defaults to approximate=True), {t.config['native']} is "
                f"{'exact' if t.config['approximate'] == 'none' else 'tanh'}"]
    return []


def weight_causes(t: LayerRecord, k: LayerRecord, t_weights: Mapping[str, np.ndarray],
                  k_native: Mapping[str, np.ndarray]) -> list[str]:
    """Why a layer's weights differ right after the transfer, where a known mistake of
    hand-written converters explains them."""
    if t.kind == "linear" and k.config.get("flatten_from"):
        kernel = next(k_native[p] for p in k.params if k_native[p].ndim == 2)
        if kernel.shape[::-1] == t_weights["weight"].shape and np.array_equal(
                kernel.T, t_weights["weight"]):
            c, h, w = k.config["flatten_from"]
            return [f"Flatten: {k.name}'s kernel is torch's weight transposed only, but Keras "
                    f"flattens its (H, W, C) = ({h}, {w}, {c}) input in H, W, C order and torch in "
                    "C, H, W order: permute the kernel's rows (transfer_weights does)"]
    if t.kind == "attention":
        canonical = k.canonical(k_native)["in_proj_weight"]
        heads = t.config["heads"]
        e = canonical.shape[1]
        swapped = np.concatenate([block.reshape(e // heads, heads, e).transpose(1, 0, 2)
                                  .reshape(e, e) for block in np.split(t_weights["in_proj_weight"], 3)])
        if np.allclose(canonical, swapped, rtol=0, atol=0):
            return [f"attention: {k.name}'s per-head kernels take torch's packed rows split as "
                    "(head_dim, heads) instead of (heads, head_dim): heads in the wrong order"]
    return [f"the weights of {t.name} / {k.name} differ right after the transfer"]


def optimizer_causes(torch_opt: Any, keras_opt: Any) -> list[str]:
    """Where two native optimizers are set differently (crossloop specs compute one formula)."""
    t, k = getattr(torch_opt, "native", None), getattr(keras_opt, "native", None)
    if t is None or k is None:
        return []
    t_eps, k_eps = getattr(t, "defaults", {}).get("eps"), getattr(k, "epsilon", None)
    causes = []
    if t_eps is not None and k_eps is not None:
        adam = " (Keras adds it to the uncorrected sqrt(v), torch to the bias-corrected one: " \
               "crossloop.optim.Adam computes torch's formula on both)" if "Adam" in type(k).__name__ else ""
        causes.append(f"optimizer: torch {type(t).__name__} eps {t_eps:g}, Keras "
                      f"{type(k).__name__} epsilon {k_eps:g}{adam}")
    return causes
