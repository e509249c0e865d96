"""RMSprop, Adagrad and Adadelta on every backend: torch's documented formulas,
checked against a NumPy transcription of them, and their state in canonical layout."""

import numpy as np
import pytest

from conftest import normal_batch
from crossloop import losses, nn, optim

SPEC = nn.lenet5()  # conv kernels and a dense layer after a Flatten: every layout conversion
CE = losses.CrossEntropy()
STEPS = 3

SPECS = [
    optim.RMSprop(optim.Step(0.01, 1, 0.5), weight_decay=0.01),
    optim.RMSprop(0.01, alpha=0.9, eps=1e-6, momentum=0.9, centered=True),
    optim.Adagrad(0.1, lr_decay=0.5, initial_accumulator_value=0.1, weight_decay=0.01),
    optim.Adagrad(optim.Step(0.1, 1, 0.5)),
    optim.Adadelta(weight_decay=0.01),
    optim.Adadelta(0.5, rho=0.5, eps=1e-3),
]
IDS = ["rmsprop-decay", "rmsprop-centered-momentum", "adagrad-lr_decay-init", "adagrad-schedule",
       "adadelta", "adadelta-rho-eps"]


def reference_step(spec: optim.Optimizer, p: np.ndarray, g: np.ndarray, state: dict,
                   step: int, lr: float) -> np.ndarray:
    """torch.optim's documented update of one parameter at 1-based ``step``, in NumPy;
    updates ``state`` (torch's slot names) and returns the new parameter."""
    g = g + spec.weight_decay * p
    if isinstance(spec, optim.RMSprop):
        a = spec.alpha
        state["square_avg"] = a * state["square_avg"] + (1 - a) * g * g
        v = state["square_avg"]
        if spec.centered:
            state["grad_avg"] = a * state["grad_avg"] + (1 - a) * g
            v = v - state["grad_avg"] ** 2
        d = g / (np.sqrt(v) + spec.eps)
        if spec.momentum:
            state["momentum_buffer"] = spec.momentum * state["momentum_buffer"] + d
            d = state["momentum_buffer"]
        return p - lr * d
    if isinstance(spec, optim.Adagrad):
        state["sum"] = state["sum"] + g * g
        clr = lr / (1 + (step - 1) * spec.lr_decay)
        return p - clr * g / (np.sqrt(state["sum"]) + spec.eps)
    rho, eps = spec.rho, spec.eps
    state["square_avg"] = rho * state["square_avg"] + (1 - rho) * g * g
    d = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["square_avg"] + eps) * g
    state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * d * d
    return p - lr * d


def initial_state(spec: optim.Optimizer, params: dict) -> dict:
    start = getattr(spec, "initial_accumulator_value", 0.0)
    return {name: {slot: np.full_like(p, start if slot == "sum" else 0.0)
                   for slot in optim.slots(spec)} for name, p in params.items()}


def train(backend, spec, params, steps, x, y, opt_state=None, start=0):
    """``steps`` optimizer steps through the phases from ``params`` (and, if given, the
    canonical optimizer state at step ``start``); returns the model, optimizer and
    the canonical gradients of each step."""
    model = backend.build_model(SPEC, params, "float64")
    opt = backend.build_optimizer(spec, model)
    if opt_state is not None:
        opt = backend.set_optimizer_state(opt, model, opt_state, start)
    grads_seen = []
    for step in range(start, start + steps):
        opt = backend.set_learning_rate(opt, spec.lr(step))
        _, _, grads = backend.gradients(model, CE, x, y)
        grads_seen.append(backend.canonical_gradients(model, grads))
        opt, model = backend.apply_gradients(opt, model, grads)
    return model, opt, grads_seen


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_update_and_state_follow_torchs_formula(backend, spec):
    params = nn.init_params(SPEC, 0, dtype="float64")
    x, y = (backend.to_device(a) for a in normal_batch(8, 0, "float64"))
    fresh = backend.build_model(SPEC, params, "float64")
    before = backend.get_optimizer_state(backend.build_optimizer(spec, fresh), fresh)
    expected_state = initial_state(spec, params)
    assert set(before) == {f"{n}.{s}" for n, slots in expected_state.items() for s in slots}
    for key, value in before.items():  # zeros, or Adagrad's initial accumulator
        name, _, slot = key.rpartition(".")
        np.testing.assert_array_equal(value, expected_state[name][slot], err_msg=key)

    model, opt, grads_seen = train(backend, spec, params, STEPS, x, y)
    expected = dict(params)
    for step, grads in enumerate(grads_seen):
        expected = {name: reference_step(spec, expected[name], grads[name], expected_state[name],
                                         step + 1, spec.lr(step)) for name in expected}
    got = backend.get_params(model)
    state = backend.get_optimizer_state(opt, model)
    for name in params:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12, err_msg=name)
        assert not np.allclose(got[name], params[name])  # every parameter moved
        for slot, value in expected_state[name].items():
            np.testing.assert_allclose(state[f"{name}.{slot}"], value, rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name}.{slot}")


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_state_round_trip_continues_exactly(backend, spec):
    """Three steps, then the canonical state loaded into a fresh optimizer: the next
    two steps are those of the run that never stopped (a resume)."""
    params = nn.init_params(SPEC, 1, dtype="float64")
    x, y = (backend.to_device(a) for a in normal_batch(8, 1, "float64"))
    model, opt, _ = train(backend, spec, params, STEPS, x, y)
    saved_params, saved_state = backend.get_params(model), backend.get_optimizer_state(opt, model)
    for step in range(STEPS, STEPS + 2):
        opt = backend.set_learning_rate(opt, spec.lr(step))
        _, _, grads = backend.gradients(model, CE, x, y)
        opt, model = backend.apply_gradients(opt, model, grads)
    resumed, _, _ = train(backend, spec, saved_params, 2, x, y, saved_state, start=STEPS)
    straight, again = backend.get_params(model), backend.get_params(resumed)
    for name in straight:
        np.testing.assert_allclose(again[name], straight[name], rtol=0, atol=1e-15, err_msg=name)
