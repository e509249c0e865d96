"""The backend protocol, tested the same way on every installed backend."""

import numpy as np
import pytest

from conftest import normal_batch as batch
from crossloop import losses, nn, optim
from crossloop.testing import random_batch

SPEC = nn.lenet5()
CE = losses.CrossEntropy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_params_round_trip_exactly(backend, dtype):
    params = nn.init_params(SPEC, 1, dtype=dtype)
    got = backend.get_params(backend.build_model(SPEC, params, dtype))
    assert list(got) == list(params)
    for name in params:
        assert got[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got[name], params[name], err_msg=name)


def test_set_params_rejects_wrong_shape(backend):
    model = backend.build_model(SPEC, nn.init_params(SPEC, 0))
    bad = nn.init_params(SPEC, 0)
    bad["7.weight"] = bad["7.weight"][:, :10]
    with pytest.raises(ValueError, match=r"'7.weight' has shape \(120, 10\).*\(120, 400\)"):
        backend.set_params(model, bad)


def test_forward_gives_logits(backend):
    model = backend.build_model(SPEC, nn.init_params(SPEC, 0))
    x, _ = batch()
    logits = backend.to_numpy(backend.forward(model, backend.to_device(x)))
    assert logits.shape == (8, 10) and np.isfinite(logits).all()


def test_gradients_do_not_change_weights_apply_does(backend):
    params = nn.init_params(SPEC, 0)
    model = backend.build_model(SPEC, params)
    opt = backend.build_optimizer(optim.SGD(0.1), model)
    x, y = batch()
    loss, logits, grads = backend.gradients(model, CE, backend.to_device(x), backend.to_device(y))
    assert np.isfinite(backend.to_numpy(loss)) and backend.to_numpy(logits).shape == (8, 10)
    canon = backend.canonical_gradients(model, grads)
    assert {k: v.shape for k, v in canon.items()} == SPEC.param_shapes()
    unchanged = backend.get_params(model)
    assert all(np.array_equal(unchanged[k], params[k]) for k in params)
    backend.apply_gradients(opt, model, grads)
    after = backend.get_params(model)
    for name in params:  # plain SGD: p - lr * g
        np.testing.assert_allclose(after[name], params[name] - 0.1 * canon[name], rtol=1e-5, atol=1e-7)


def test_loss_phase_matches_numpy(backend):
    logits = np.random.default_rng(0).standard_normal((5, 10))
    y = np.array([0, 3, 9, 2, 2])
    shifted = logits - logits.max(1, keepdims=True)
    expected = np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(5), y])
    got = backend.to_numpy(backend.loss(CE, backend.to_device(logits), backend.to_device(y)))
    assert got == pytest.approx(expected, rel=1e-12)
    target = np.ones((5, 10))
    mse = backend.to_numpy(backend.loss(losses.MSE(), backend.to_device(logits), backend.to_device(target)))
    assert mse == pytest.approx(np.mean((logits - 1) ** 2), rel=1e-12)


def test_metrics_accumulate_and_reset(backend):
    m = backend.metrics()
    logits = np.eye(10)[[1, 2, 3, 4]] * 5.0
    y = np.array([1, 2, 0, 0])
    m = backend.update_metrics(m, backend.to_device(np.array(0.5)), backend.to_device(logits),
                               backend.to_device(y))
    m = backend.update_metrics(m, backend.to_device(np.array(1.0)), backend.to_device(logits[:2]),
                               backend.to_device(y[:2]))
    assert backend.metric_results(m) == {"loss": pytest.approx((0.5 * 4 + 1.0 * 2) / 6),
                                         "accuracy": pytest.approx(4 / 6), "count": 6}
    backend.reset_metrics(m)
    assert backend.metric_results(m)["count"] == 0


def test_train_step_equals_the_phases(backend):
    params = nn.init_params(SPEC, 0, dtype="float64")
    spec = optim.Adam(1e-3, clip_norm=0.5)
    x, y = batch(dtype="float64")
    x, y = backend.to_device(x), backend.to_device(y)
    fused = backend.build_model(SPEC, params, "float64")
    fused_opt, fused_m = backend.build_optimizer(spec, fused), backend.metrics()
    phased = backend.build_model(SPEC, params, "float64")
    phased_opt = backend.build_optimizer(spec, phased)
    for _ in range(3):
        backend.train_step(fused, fused_opt, CE, fused_m, x, y)
        _, _, grads = backend.gradients(phased, CE, x, y)
        backend.apply_gradients(phased_opt, phased, grads)
    a, b = backend.get_params(fused), backend.get_params(phased)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-14, err_msg=name)
    assert backend.metric_results(fused_m)["count"] == 24


def test_set_learning_rate_takes_effect(backend):
    params = nn.init_params(SPEC, 0, dtype="float64")
    model = backend.build_model(SPEC, params, "float64")
    opt = backend.build_optimizer(optim.SGD(1.0), model)
    backend.set_learning_rate(opt, 0.25)
    x, y = batch(dtype="float64")
    _, _, grads = backend.gradients(model, CE, backend.to_device(x), backend.to_device(y))
    canon = backend.canonical_gradients(model, grads)
    backend.apply_gradients(opt, model, grads)
    after = backend.get_params(model)
    np.testing.assert_allclose(after["0.bias"], params["0.bias"] - 0.25 * canon["0.bias"], rtol=1e-13)


def test_clip_norm_bounds_the_update(backend):
    params = nn.init_params(SPEC, 0, dtype="float64")
    model = backend.build_model(SPEC, params, "float64")
    opt = backend.build_optimizer(optim.SGD(1.0, clip_norm=1e-3), model)
    x, y = batch(dtype="float64")
    _, _, grads = backend.gradients(model, CE, backend.to_device(x), backend.to_device(y))
    backend.apply_gradients(opt, model, grads)
    after = backend.get_params(model)
    step = np.sqrt(sum(np.sum((after[k] - params[k]) ** 2) for k in params))
    assert step == pytest.approx(1e-3, rel=1e-5)  # the global norm after clipping


def test_eval_step_does_not_train(backend):
    params = nn.init_params(SPEC, 0)
    model = backend.build_model(SPEC, params)
    m = backend.metrics()
    x, y = batch()
    backend.eval_step(model, CE, m, backend.to_device(x), backend.to_device(y))
    assert backend.metric_results(m)["count"] == 8
    assert all(np.array_equal(backend.get_params(model)[k], params[k]) for k in params)


@pytest.mark.parametrize("name", sorted(nn.PRESETS))
def test_every_preset_builds_and_trains(backend, name):
    spec = nn.preset(name)
    model = backend.build_model(spec, nn.init_params(spec, 0))
    opt = backend.build_optimizer(optim.SGD(0.01, momentum=0.9), model)
    m = backend.metrics()
    x, y = random_batch(spec)
    backend.train_step(model, opt, CE, m, backend.to_device(x), backend.to_device(y))
    assert backend.metric_results(m)["count"] == 8


def test_a_model_name_with_spaces_and_symbols_trains(backend):
    spec = nn.Sequential([nn.Linear(16, 3)], input_shape=(16,), name="my net (v2)")
    model = backend.build_model(spec, nn.init_params(spec, 0))
    opt = backend.build_optimizer(optim.SGD(0.1), model)
    x, y = np.ones((4, 16), "float32"), np.array([0, 1, 2, 0])
    backend.train_step(model, opt, CE, backend.metrics(), backend.to_device(x),
                       backend.to_device(y))


def test_grad_norm_metric_is_the_global_norm_before_clipping(backend):
    params = nn.init_params(SPEC, 0, dtype="float64")
    x, y = batch(dtype="float64")
    x, y = backend.to_device(x), backend.to_device(y)
    probe = backend.build_model(SPEC, params, "float64")
    _, _, grads = backend.gradients(probe, CE, x, y)
    expected = np.sqrt(sum(np.sum(g ** 2) for g in backend.canonical_gradients(probe, grads).values()))
    model = backend.build_model(SPEC, params, "float64")
    opt = backend.build_optimizer(optim.SGD(1e-12, clip_norm=1e-6), model)
    m = backend.metrics(grad_norm=True)
    backend.train_step(model, opt, CE, m, x, y)
    assert backend.metric_results(m)["grad_norm"] == pytest.approx(expected, rel=1e-10)
    assert "grad_norm" not in backend.metric_results(backend.metrics())
    sums = backend.metric_sums(m)
    restored = backend.set_metric_sums(backend.metrics(grad_norm=True), sums)
    assert backend.metric_results(restored) == backend.metric_results(m)


def test_metric_sums_of_older_checkpoints_and_regression_runs_round_trip(backend):
    # Checkpoints from before token and regression metrics hold no labels, abs_error_sum
    # or values: the labels are the samples, and there is no mae.
    old = backend.set_metric_sums(backend.metrics(), {"loss_sum": 2.0, "correct": 1, "count": 4})
    assert backend.metric_results(old) == {"loss": 0.5, "accuracy": 0.25, "count": 4}
    assert backend.metric_sums(old) == {"loss_sum": 2.0, "correct": 1, "labels": 4, "count": 4}
    regression = {"loss_sum": 2.0, "correct": 0, "labels": 0, "count": 4, "abs_error_sum": 2.0,
                  "values": 8}
    restored = backend.set_metric_sums(backend.metrics(), regression)
    assert backend.metric_sums(restored) == regression
    assert backend.metric_results(restored)["mae"] == 0.25
