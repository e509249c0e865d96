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


# RMSprop divides each element by sqrt(its own squared-gradient average) + 1e-8, so
# an element whose gradient is tiny (~1e-9, a weight on a nearly dead input) turns
# the ~1e-17 absolute rounding difference of its gradient into ~1e-9 of its update;
# momentum carries it on. Centered, with momentum and clipping, that reaches ~3e-11
# in ten steps here: within the promised 1e-10, not the 1e-12 the others meet.
@pytest.mark.parametrize("spec_opt, atol", [
    (optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), 1e-12),
    (optim.Adam(optim.Cosine(2e-3, 10, warmup_steps=3), weight_decay=1e-3), 1e-12),
    (optim.AdamW(1e-3, weight_decay=0.01, clip_norm=1.0), 1e-12),
    (optim.RMSprop(optim.Cosine(1e-2, 10, warmup_steps=3), weight_decay=1e-3), 1e-12),
    (optim.RMSprop(1e-2, momentum=0.9, centered=True, clip_norm=1.0), 1e-10),
    (optim.Adagrad(0.05, lr_decay=0.1, weight_decay=1e-3), 1e-12),
    (optim.Adadelta(optim.Step(1.0, 3, 0.7), weight_decay=1e-3), 1e-12),
], ids=["sgd-nesterov", "adam-cosine", "adamw-clip", "rmsprop-cosine", "rmsprop-centered-momentum",
        "adagrad-lr_decay", "adadelta-step"])
def test_training_agrees_in_float64(backends, spec_opt, atol):
    """Ten fused steps through the Trainer, each backend: weights equal to ~1e-12
    (1e-10, the parity promise, for centered RMSprop with momentum)."""
    x, y = normal_batch(80, 1, "float64")
    runs = {}
    for b, backend in backends.items():
        trainer = crossloop.Trainer(nn.lenet5(), spec_opt, backend=backend, dtype="float64", seed=3)
        for start in range(0, 80, 8):
            trainer.train_batch(x[start:start + 8], y[start:start + 8])
        runs[b] = trainer.params()
    for key in runs["torch"]:
        np.testing.assert_allclose(runs["torch"][key], runs["tensorflow"][key], rtol=0, atol=atol,
                                   err_msg=key)


@pytest.mark.parametrize("spec_opt", [
    optim.RMSprop(1e-2, momentum=0.9, centered=True),
    optim.Adagrad(0.05, initial_accumulator_value=0.1),
    optim.Adadelta(),
], ids=["rmsprop", "adagrad", "adadelta"])
def test_optimizer_state_resumes_across_backends(backends, spec_opt):
    """Five float64 steps on torch, its state_dict loaded into a TensorFlow trainer, five
    more there: the same as ten steps on torch, to 1e-12."""
    x, y = normal_batch(80, 2, "float64")

    def trainer(b):
        return crossloop.Trainer(nn.lenet5(), spec_opt, backend=backends[b], dtype="float64",
                                 seed=4)

    straight, first = trainer("torch"), trainer("torch")
    for start in range(0, 80, 8):
        straight.train_batch(x[start:start + 8], y[start:start + 8])
        if start < 40:
            first.train_batch(x[start:start + 8], y[start:start + 8])
    moved = trainer("tensorflow")
    moved.load_state_dict(first.state_dict())
    for start in range(40, 80, 8):
        moved.train_batch(x[start:start + 8], y[start:start + 8])
    for key, value in straight.params().items():
        np.testing.assert_allclose(moved.params()[key], value, rtol=0, atol=1e-12, err_msg=key)
