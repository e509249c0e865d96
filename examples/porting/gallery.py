"""The porting gallery: each case is a torch model, a Keras port (faithful, or with
one planted bug) and what compare_models must say about it. Run by
tests/test_porting_gallery.py and acceptance/porting_gallery.py; explained in
docs/porting.md.

Run it: ``KERAS_BACKEND=tensorflow python examples/porting/gallery.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

import resnet  # noqa: E402
import transformer  # noqa: E402

from crossloop import optim  # noqa: E402
from crossloop.compare import ModelReport, compare_models  # noqa: E402

STEPS = 20


@dataclass(frozen=True)
class Case:
    """One port. ``layer``: the torch layer compare_models must name (None: the port
    is faithful); ``cause``: words the likely cause must contain; ``step``: the
    training step of the divergence (None: found in the forward pass)."""
    name: str
    model: str                 # "resnet" or "transformer"
    bug: str | None = None
    hand_port: Callable[..., None] | None = None   # a hand-written weight copy
    native_adam: bool = False
    layer: str | None = None
    cause: str = ""
    step: int | None = None


CASES = [
    Case("resnet", "resnet"),
    Case("transformer", "transformer"),
    Case("batchnorm_defaults", "resnet", bug="bn_defaults", layer="bn",
         cause="torch momentum 0.1 / eps 1e-05, Keras momentum 0.99 / epsilon 0.001"),
    Case("batchnorm_biased_running_variance", "resnet", bug="bn_biased_variance", layer="bn",
         step=0, cause="unbiased batch variance"),
    Case("flatten_order", "resnet", hand_port=resnet.port_without_flatten_permutation,
         layer="fc", cause="H, W, C order"),
    Case("same_padding_stride2", "resnet", bug="same_padding", layer="block.conv1",
         cause="'same' pads the bottom and right only"),
    Case("layernorm_default_eps", "transformer", bug="ln_default_eps", layer="ln1",
         cause="torch eps 1e-05, Keras epsilon 0.001"),
    Case("gelu_tanh", "transformer", bug="gelu_tanh", layer="act", cause="tanh approximation"),
    Case("attention_head_order", "transformer",
         hand_port=transformer.port_with_heads_in_wrong_order, layer="attn",
         cause="heads in the wrong order"),
    Case("adam_keras_epsilon", "transformer", native_adam=True, layer="embed", step=0,
         cause="torch Adam eps 1e-08, Keras Adam epsilon 1e-07"),
]


def batch(model: str, dtype: str = "float64", n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch for the model: 8x8 one-channel images, or 6 token ids."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, 1, 8, 8)).astype(dtype) if model == "resnet"
         else rng.integers(0, transformer.VOCAB, (n, 6)))
    return x, rng.integers(0, 10, n)


def models(case: Case, dtype: str = "float64") -> tuple[Any, Any]:
    if case.model == "resnet":
        return resnet.torch_resnet(dtype), resnet.keras_resnet(dtype, bug=case.bug)
    return transformer.torch_transformer(dtype), transformer.keras_transformer(dtype, bug=case.bug)


def run_case(case: Case, dtype: str = "float64", steps: int = STEPS,
             tolerance: float | None = None) -> ModelReport:
    """compare_models on the case's pair, trained ``steps`` steps (SGD with momentum, or
    the case's two native Adams)."""
    x, y = batch(case.model, dtype)
    torch_model, keras_model = models(case, dtype)
    weight_map: Any = "auto"
    if case.hand_port is not None:
        case.hand_port(torch_model, keras_model, x)
        weight_map = None
    # SGD with momentum: Adam divides each gradient by its own size, so a gradient that is
    # zero in exact arithmetic (the attention's key bias) turns its rounding noise into
    # steps of about lr * noise / eps -- see docs/porting.md
    opt: Any = optim.SGD(0.05, momentum=0.9)
    if case.native_adam:
        opt = (torch.optim.Adam(torch_model.parameters(), 1e-2), keras.optimizers.Adam(1e-2))
    return compare_models(torch_model, keras_model, x, y, optimizer=opt, steps=steps,
                          weight_map=weight_map, dtype=dtype, tolerance=tolerance)


def verdict(case: Case, report: ModelReport) -> str | None:
    """None if the report says what the case expects, else what is wrong."""
    first = report.first_divergence
    if case.layer is None:
        return None if report.passed else f"a faithful port failed: {report.summary()}"
    if first is None:
        return "the planted bug was not caught"
    if first.torch != case.layer or first.step != case.step:
        return f"named {first.where()}, expected layer {case.layer} at step {case.step}"
    if not any(case.cause in cause for cause in report.causes):
        return f"causes {report.causes} do not say {case.cause!r}"
    return None


if __name__ == "__main__":
    for case in CASES:
        report = run_case(case)
        print(f"{case.name:<34} {verdict(case, report) or 'as expected'}\n  {report.summary()}")
