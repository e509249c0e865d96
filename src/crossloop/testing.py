"""pytest helpers for testing code on every installed backend, and across backends.

Use them in your own suite by adding to your ``conftest.py``::

    pytest_plugins = ["crossloop.testing"]

then write ``def test_x(backend): ...`` and it runs once per installed backend,
and call :func:`assert_parity` to check that two backends train your model the
same way, step by step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from . import nn, optim
from .backend import Backend
from .parity import ParityReport, run_parity
from .registry import available_backends, get_backend


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each installed backend, on the CPU (so results are comparable and exact)."""
    return get_backend(request.param, device="cpu")


def assert_parity(spec: nn.Sequential, optimizer: optim.Optimizer, data: Any, *,
                  steps: int, **options: Any) -> ParityReport:
    """Train on two backends (default torch and tensorflow, float64) and fail the
    test, naming the first step and tensor over tolerance, unless they agree.

    Takes the arguments of :func:`crossloop.parity.run_parity`; returns the
    report so a test can check more (e.g. ``report.max_diff("weights")``).
    """
    report = run_parity(spec, optimizer, data, steps=steps, **options)
    if not report.passed:
        raise AssertionError(f"backends disagree at {report.failure}\n{report.summary()}\n"
                             f"{report.table(max_rows=12)}")
    return report


def synthetic_batches(count: int, input_shape: tuple[int, int, int] = (1, 12, 12), *,
                      batch_size: int = 16, num_classes: int = 10,
                      seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` learnable float64 batches ``(x NCHW, y)`` for quick parity tests
    without a data set: noise plus a bright block in one of four quadrants, with
    a brightness that grows with the label."""
    rng = np.random.default_rng(seed)
    c, h, w = input_shape
    out = []
    for _ in range(count):
        x = rng.normal(0, 0.3, size=(batch_size, c, h, w))
        y = rng.integers(0, num_classes, batch_size)
        for i, label in enumerate(y):
            r, q = divmod(int(label) % 4, 2)
            x[i, :, r * h // 2:(r + 1) * h // 2, q * w // 2:(q + 1) * w // 2] += 1 + label / num_classes
        out.append((x, y))
    return out


def assert_models_agree(torch_model: Any, keras_model: Any, inputs: np.ndarray,
                        targets: np.ndarray | None = None, **options: Any) -> Any:
    """Fail the test, naming the first layer (or training step and tensor) where a
    torch model and its Keras port part and the likely cause, unless they agree.

    Takes the arguments of :func:`crossloop.compare.compare_models` (weights are
    transferred from the torch model first unless ``weight_map=None``); returns
    the report so a test can check more.
    """
    from .compare import compare_models
    report = compare_models(torch_model, keras_model, inputs, targets, **options)
    if not report.passed:
        raise AssertionError(f"{report.summary()}\n{report.table(max_rows=40)}")
    return report


def random_batch(spec: nn.Sequential, n: int = 8, *, seed: int = 0,
                 dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """A batch of ``n`` random samples that fits ``spec``, with integer targets for its
    outputs: token ids below the vocabulary for a model that starts with an
    Embedding (and next-token targets), standard-normal inputs otherwise."""
    rng = np.random.default_rng(seed)
    first = spec.leaves()[0][1]
    out = spec.shapes()[-1]
    if isinstance(first, nn.Embedding):
        x = rng.integers(0, first.num_embeddings, (n, *spec.input_shape))
    else:
        x = rng.standard_normal((n, *spec.input_shape)).astype(dtype)
    return x, rng.integers(0, out[-1], (n, *out[:-1]))
