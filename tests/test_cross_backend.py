"""The two backends against each other: same start, same first step, same short run."""

import numpy as np
import pytest

import crossloop
from conftest import normal_batch
from crossloop import losses, nn, optim
from crossloop.testing import random_batch

pytestmark = pytest.mark.skipif(len(crossloop.available_backends()) < 2,
                                reason="needs two installed backends")
BACKENDS = ("torch", "tensorflow")


@pytest.fixture(scope="module")
def backends():
    return {name: crossloop.get_backend(name, device="cpu") for name in BACKENDS}


@pytest.mark.parametrize("name", sorted(nn.PRESETS))
def test_same_seed_same_initial_params_exactly(backends, name):
    spec = nn.preset(name)
    params = nn.init_params(spec, 7)
    loaded = {b: backends[b].get_params(backends[b].build_model(spec, params)) for b in BACKENDS}
    for key in params:
        np.testing.assert_array_equal(loaded["torch"][key], loaded["tensorflow"][key], err_msg=key)


@pytest.mark.parametrize("name", sorted(nn.PRESETS))
def test_first_step_loss_agrees_float32(backends, name):
    spec = nn.without_dropout(nn.preset(name))  # dropout masks are each framework's own
    params = nn.init_params(spec, 0)
    x, y = random_batch(spec, 64)
    first = {}
    for b, backend in backends.items():
        model = backend.build_model(spec, params)
        loss, _, _ = backend.gradients(model, losses.CrossEntropy(), backend.to_device(x),
                                       backend.to_device(y))
        first[b] = float(backend.to_numpy(loss))
    assert abs(first["torch"] - first["tensorflow"]) <= 1e-6


@pytest.mark.parametrize("spec_opt", [
    optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    optim.Adam(optim.Cosine(2e-3, 10, warmup_steps=3), weight_decay=1e-3),
    optim.AdamW(1e-3, weight_decay=0.01, clip_norm=1.0),
], ids=["sgd-nesterov", "adam-cosine", "adamw-clip"])
def test_training_agrees_in_float64(backends, spec_opt):
    """Ten fused steps through the Trainer, each backend: weights equal to ~1e-12."""
    x, y = normal_batch(80, 1, "float64")
    runs = {}
    for b, backend in backends.items():
        trainer = crossloop.Trainer(nn.lenet5(), spec_opt, backend=backend, dtype="float64", seed=3)
        for start in range(0, 80, 8):
            trainer.train_batch(x[start:start + 8], y[start:start + 8])
        runs[b] = trainer.params()
    for key in runs["torch"]:
        np.testing.assert_allclose(runs["torch"][key], runs["tensorflow"][key], rtol=0, atol=1e-12,
                                   err_msg=key)
