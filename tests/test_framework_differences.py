"""One test per row of docs/framework-differences.md.

Each test shows two things: the frameworks' native defaults really differ (so
the row stays true, or this test tells us, when a framework changes), and
crossloop's two backends agree anyway.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from crossloop import NonFiniteError, NonFiniteGuard, Trainer, get_backend, losses, nn, optim
from crossloop.data import Batches, DataError
from crossloop.parity import forward_diff, run_parity
from crossloop.testing import assert_parity, synthetic_batches

torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
F = torch.nn.functional

SMALL = nn.Sequential((nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                       nn.Linear(3 * 6 * 6, 10)), input_shape=(1, 12, 12), name="small")
STEPS = 6


@pytest.fixture(scope="module")
def pair():
    return [get_backend("torch", device="cpu"), get_backend("tensorflow", device="cpu")]


def agree(opt: optim.Optimizer, spec: nn.Sequential = SMALL, steps: int = STEPS):
    """crossloop's side of a row: both backends train the same, step by step, in float64."""
    return assert_parity(spec, opt, synthetic_batches(steps, spec.input_shape), steps=steps)


def torch_steps(make, grads, lrs=None, p0=0.0) -> np.ndarray:
    """Native torch: a float64 parameter from p0, one optimizer step per gradient."""
    p = torch.tensor(np.atleast_1d(p0).astype(np.float64), requires_grad=True)
    opt = make([p])
    for i, g in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = lrs[i] if lrs else group["lr"]
        p.grad = torch.tensor(np.atleast_1d(g), dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


def keras_steps(opt, grads, lrs=None, p0=0.0) -> np.ndarray:
    """Native Keras: the same, through ``apply_gradients``."""
    v = keras.Variable(np.atleast_1d(p0).astype(np.float64))
    for i, g in enumerate(grads):
        if lrs:
            opt.learning_rate = lrs[i]
        opt.apply_gradients([(tf.constant(np.atleast_1d(g), tf.float64), v)])
    return v.numpy()


def native_params(pair, spec, params):
    """Each backend's native tensors (torch's state dict, Keras's variables by canonical name)."""
    torch_model = pair[0].build_model(spec, params, "float64")
    tf_model = pair[1].build_model(spec, params, "float64")
    return ({k: v.detach().numpy() for k, v in torch_model.state_dict().items()},
            {name: variable.numpy() for name, (variable, _) in tf_model.crossloop_table.items()})


# -- 1. initialisation ------------------------------------------------------------

def test_init_defaults(pair):
    lin = torch.nn.Linear(784, 128)
    dense = keras.layers.Dense(128)
    dense.build((None, 784))
    kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
    assert lin.weight.abs().max() <= 1 / math.sqrt(784) and lin.bias.abs().max() > 0
    assert type(dense.kernel_initializer).__name__ == "GlorotUniform"
    assert np.all(bias == 0) and np.abs(kernel).max() > 1 / math.sqrt(784)
    assert np.abs(kernel).max() <= math.sqrt(6 / (784 + 128))
    # crossloop draws once in NumPy; both backends hold exactly those values
    for init in nn.INITS:
        params = nn.init_params(SMALL, 0, init=init, dtype="float64")
        for b in pair:
            got = b.get_params(b.build_model(SMALL, params, "float64"))
            assert all(np.array_equal(got[k], params[k]) for k in params)
    torch_like = nn.init_params(nn.mlp(), 0)
    assert np.abs(torch_like["1.weight"]).max() <= 1 / math.sqrt(784) and torch_like["1.bias"].any()
    glorot = nn.init_params(nn.mlp(), 0, init="glorot")
    assert not glorot["1.bias"].any() and np.abs(glorot["1.weight"]).max() > 1 / math.sqrt(784)


# -- 2-5. layouts -----------------------------------------------------------------

def test_activations_nchw_vs_nhwc(pair):
    assert keras.config.image_data_format() == "channels_last"
    assert tuple(torch.nn.Conv2d(1, 4, 3)(torch.zeros(2, 1, 12, 12)).shape) == (2, 4, 10, 10)
    assert tuple(keras.layers.Conv2D(4, 3)(np.zeros((2, 12, 12, 1))).shape) == (2, 10, 10, 4)
    x = synthetic_batches(1, SMALL.input_shape)[0][0]          # canonical NCHW
    assert tuple(pair[1].to_device(x).shape) == (16, 12, 12, 1)  # NHWC inside TensorFlow
    assert forward_diff(SMALL, nn.init_params(SMALL, 0, dtype="float64"), x, pair) <= 1e-12


def test_conv_kernels_oihw_vs_hwio(pair):
    conv = keras.layers.Conv2D(4, 3)
    conv.build((None, 12, 12, 1))
    assert tuple(torch.nn.Conv2d(1, 4, 3).weight.shape) == (4, 1, 3, 3)
    assert tuple(conv.kernel.shape) == (3, 3, 1, 4)
    params = nn.init_params(SMALL, 0, dtype="float64")
    torch_native, tf_native = native_params(pair, SMALL, params)
    np.testing.assert_array_equal(torch_native["0.weight"], params["0.weight"])
    np.testing.assert_array_equal(tf_native["0.weight"], params["0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(pair[1].get_params(pair[1].build_model(SMALL, params, "float64"))
                                  ["0.weight"], params["0.weight"])


def test_dense_weights_out_in_vs_in_out(pair):
    dense = keras.layers.Dense(3)
    dense.build((None, 5))
    assert tuple(torch.nn.Linear(5, 3).weight.shape) == (3, 5)
    assert tuple(dense.kernel.shape) == (5, 3)
    spec = nn.mlp(hidden=8)
    params = nn.init_params(spec, 0, dtype="float64")
    _, tf_native = native_params(pair, spec, params)
    np.testing.assert_array_equal(tf_native["3.weight"], params["3.weight"].T)
    assert forward_diff(spec, params, synthetic_batches(1, (1, 28, 28))[0][0], pair) <= 1e-12


def test_flatten_order_chw_vs_hwc(pair):
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)     # NCHW, C=3
    torch_flat = torch.nn.Flatten()(torch.from_numpy(x)).numpy()
    keras_flat = np.array(keras.layers.Flatten()(x.transpose(0, 2, 3, 1)))  # NHWC
    assert not np.array_equal(torch_flat, keras_flat)
    np.testing.assert_array_equal(np.sort(torch_flat), np.sort(keras_flat))  # same values, other order
    # crossloop permutes the rows of the Dense after Flatten at the parameter boundary
    params = nn.init_params(SMALL, 0, dtype="float64")
    _, tf_native = native_params(pair, SMALL, params)
    assert not np.array_equal(tf_native["4.weight"], params["4.weight"].T)
    assert forward_diff(SMALL, params, synthetic_batches(1, SMALL.input_shape)[0][0], pair) <= 1e-12


# -- 6-9. optimizer semantics -------------------------------------------------------

def test_adam_epsilon_placement_and_default():
    assert inspect.signature(torch.optim.Adam).parameters["eps"].default == 1e-8
    assert inspect.signature(keras.optimizers.Adam).parameters["epsilon"].default == 1e-7
    # same eps, one step on a tiny gradient: torch adds eps to sqrt(v_hat), Keras to sqrt(v),
    # i.e. Keras's eps acts like eps / sqrt(1 - beta2**t) = 31.6 * eps at step 1
    g, eps = 1e-6, 1e-7
    t = torch_steps(lambda p: torch.optim.Adam(p, lr=1.0, eps=eps), [g])
    k = keras_steps(keras.optimizers.Adam(learning_rate=1.0, epsilon=eps), [g])
    np.testing.assert_allclose(t, -g / (g + eps), rtol=1e-12)
    np.testing.assert_allclose(k, -g / (g + eps / math.sqrt(1 - 0.999)), rtol=1e-4)  # float32 powers
    assert abs(t - k).max() > 0.5
    agree(optim.Adam(1e-2, eps=1e-3))  # an eps large enough to matter


def test_sgd_momentum_under_a_changing_learning_rate():
    # torch: buf = mu*buf + g; p -= lr*buf.  Keras: v = mu*v - lr*g; p += v.
    def both(lrs):
        return (torch_steps(lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.9), [1.0, 1.0], lrs),
                keras_steps(keras.optimizers.SGD(learning_rate=1.0, momentum=0.9), [1.0, 1.0], lrs))
    same_lr = both([1.0, 1.0])
    np.testing.assert_allclose(same_lr[0], same_lr[1], rtol=1e-6)  # equal while lr is fixed
    # (to float32 rounding: Keras keeps lr and momentum in float32 variables)
    t, k = both([1.0, 0.5])
    np.testing.assert_allclose(t, -(1.0 + 0.5 * 1.9), rtol=1e-12)    # -1.95
    np.testing.assert_allclose(k, -(1.0 + 0.9 * 1.0 + 0.5), rtol=1e-6)  # -2.4
    # crossloop: the learning rate changes every step, plain and nesterov momentum
    agree(optim.SGD(optim.Step(0.1, step_size=1, gamma=0.7), momentum=0.9))
    agree(optim.SGD(optim.Cosine(0.1, STEPS, warmup_steps=2), momentum=0.9, nesterov=True))


def test_coupled_vs_decoupled_weight_decay():
    assert inspect.signature(torch.optim.Adam).parameters["weight_decay"].default == 0
    assert inspect.signature(torch.optim.AdamW).parameters["weight_decay"].default == 0.01
    assert inspect.signature(keras.optimizers.Adam).parameters["weight_decay"].default is None
    assert inspect.signature(keras.optimizers.AdamW).parameters["weight_decay"].default == 0.004
    # zero gradient, p = 1: torch's Adam decays through the gradient (a full Adam step),
    # Keras's Adam(weight_decay) decays the weight directly (p -= lr*wd*p)
    t = torch_steps(lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.1), [0.0], p0=1.0)
    k = keras_steps(keras.optimizers.Adam(learning_rate=0.1, weight_decay=0.1), [0.0], p0=1.0)
    np.testing.assert_allclose(t, 0.9, rtol=1e-6)
    np.testing.assert_allclose(k, 0.99, rtol=1e-6)
    for opt in (optim.Adam(1e-2, weight_decay=0.1), optim.AdamW(1e-2, weight_decay=0.1),
                optim.SGD(0.1, momentum=0.9, weight_decay=0.1)):
        agree(opt)


def test_gradient_clipping_global_norm_epsilon_and_per_tensor_clipnorm():
    grads = [np.array([3.0, 4.0]), np.array([0.0, 5.0])]  # each norm 5, global norm sqrt(50)
    tensors = [torch.tensor(g, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    torch_clipped = [t.grad.numpy() for t in tensors]
    tf_clipped, _ = tf.clip_by_global_norm([tf.constant(g) for g in grads], 1.0)
    total = math.sqrt(50)
    np.testing.assert_allclose(torch_clipped[0], grads[0] / (total + 1e-6), rtol=1e-12)
    np.testing.assert_allclose(tf_clipped[0].numpy(), grads[0] / total, rtol=1e-12)
    assert not np.array_equal(torch_clipped[0], tf_clipped[0].numpy())  # the 1e-6 in torch's rule
    # Keras's clipnorm clips each tensor to norm 1 on its own
    v = [keras.Variable(np.zeros(2)) for _ in grads]
    keras.optimizers.SGD(learning_rate=1.0, clipnorm=1.0).apply_gradients(
        [(tf.constant(g), var) for g, var in zip(grads, v)])
    np.testing.assert_allclose(-np.array(v[0].numpy()), grads[0] / 5, rtol=1e-6)
    assert np.linalg.norm(torch_clipped[0]) < 0.75 < np.linalg.norm(v[0].numpy())
    # crossloop: a clip norm small enough to clip at every step (and not exact in float32)
    report = agree(optim.SGD(0.1, momentum=0.9, clip_norm=0.05))
    assert min(r.grad_norm[0] for r in report.steps) > 0.05
    # the TensorFlow backend's rule, directly: torch's, in float64, with 0.05 not rounded
    # to float32 (which would part them by 1.5e-8 relative)
    from crossloop_tensorflow import optimizers as tf_optimizers
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(tensors, 0.05)
    ours = tf_optimizers.clip_by_global_norm([tf.constant(g) for g in grads], 0.05)
    np.testing.assert_allclose(np.concatenate([g.numpy() for g in ours]),
                               np.concatenate([t.grad.numpy() for t in tensors]), rtol=1e-13)


# -- 10-13. layers, randomness, precision, losses --------------------------------------

def test_same_padding_with_stride_2(pair):
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        torch.nn.Conv2d(1, 4, 3, stride=2, padding="same")
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(1, 1, 12, 12)), rng.normal(size=(4, 1, 3, 3))
    torch_out = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1).numpy()
    keras_out = tf.nn.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), 2, "SAME").numpy()
    assert torch_out.shape == (1, 4, 6, 6) and keras_out.shape == (1, 6, 6, 4)
    # Keras's 'same' pads 0 before and 1 after here; torch's padding=1 pads 1 on each side
    assert np.abs(torch_out - keras_out.transpose(0, 3, 1, 2)).max() > 0.1
    spec = nn.Sequential((nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 10)), input_shape=(1, 12, 12))
    assert forward_diff(spec, nn.init_params(spec, 0, dtype="float64"),
                        synthetic_batches(1, spec.input_shape)[0][0], pair) <= 1e-12
    agree(optim.SGD(0.05), spec)


def test_dropout_masks_come_from_each_frameworks_rng(pair):
    torch.manual_seed(0)
    torch_mask = F.dropout(torch.ones(1000, dtype=torch.float64), 0.5, training=True).numpy()
    tf.random.set_seed(0)
    keras_mask = np.array(keras.layers.Dropout(0.5, seed=0)(np.ones(1000), training=True))
    assert set(np.unique(torch_mask)) == set(np.unique(keras_mask)) == {0.0, 2.0}  # same 1/(1-p)
    assert (torch_mask != keras_mask).mean() > 0.3                            # other masks
    spec = nn.Sequential((*SMALL.layers[:4], nn.Dropout(0.5), SMALL.layers[4]),
                         input_shape=(1, 12, 12))
    with pytest.raises(ValueError, match="Dropout.*use p=0"):
        agree(optim.SGD(0.1), spec)
    x = synthetic_batches(1, spec.input_shape)[0][0]
    assert forward_diff(spec, nn.init_params(spec, 0, dtype="float64"), x, pair) <= 1e-12  # eval
    agree(optim.SGD(0.1), nn.Sequential((*SMALL.layers[:4], nn.Dropout(0.0), SMALL.layers[4]),
                                        input_shape=(1, 12, 12)))


def test_tf32_defaults_and_parity_switches_it_off(pair, monkeypatch):
    tf_enabled = tf.config.experimental.tensor_float_32_execution_enabled
    defaults = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, tf_enabled())
    assert defaults == (False, True, True)  # torch: matmul off, convolutions on; TF: both on
    seen = []

    def spy(backend):
        original = backend.gradients

        def gradients(*args, **kwargs):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                         tf_enabled()))
            return original(*args, **kwargs)
        monkeypatch.setattr(backend, "gradients", gradients)

    for b in pair:
        spy(b)
    assert run_parity(SMALL, optim.SGD(0.1), synthetic_batches(2, (1, 12, 12)), steps=2,
                      backends=pair).passed
    assert seen and all(flags == (False, False, False) for flags in seen)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            tf_enabled()) == defaults  # restored after the run


def test_loss_reduction_and_logits(pair):
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(8, 10)), rng.integers(0, 10, 8)
    torch_loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    assert torch_loss.shape == () and inspect.signature(F.cross_entropy).parameters[
        "reduction"].default == "mean"
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    assert per_example.shape == (8,)  # tf.nn does not reduce
    keras_default = keras.losses.SparseCategoricalCrossentropy()
    assert keras_default.reduction == "sum_over_batch_size"
    assert inspect.signature(keras.losses.SparseCategoricalCrossentropy).parameters[
        "from_logits"].default is False  # treats its input as probabilities
    assert abs(float(keras_default(y, logits)) - torch_loss.item()) > 0.1
    np.testing.assert_allclose(float(np.mean(per_example)), torch_loss.item(), rtol=1e-12)
    # crossloop: a batch mean from logits on both backends, for both losses
    targets = rng.normal(size=(8, 10))
    for spec, target in ((losses.CrossEntropy(), y), (losses.MSE(), targets)):
        values = [b.to_numpy(b.loss(spec, b.to_device(logits), b.to_device(target))) for b in pair]
        assert np.shape(values[0]) == np.shape(values[1]) == ()
        np.testing.assert_allclose(values[0], values[1], rtol=1e-14)
    np.testing.assert_allclose(values[0], np.mean((logits - targets) ** 2), rtol=1e-14)


def test_hyperparameters_are_not_rounded_to_float32():
    t = torch_steps(lambda p: torch.optim.SGD(p, lr=0.1), [1.0])
    k = keras_steps(keras.optimizers.SGD(learning_rate=0.1), [1.0])
    assert t[0] == -0.1
    assert k[0] == -float(np.float32(0.1)) != -0.1  # Keras's lr variable is float32
    # neither 0.1, 0.9 nor 0.05 is exact in float32; float64 runs still agree to 1e-10
    agree(optim.SGD(0.1, momentum=0.9, clip_norm=0.05))
    # and directly: the TensorFlow backend's learning rate is a float64 variable, and the
    # hyperparameters reach a float64 update unrounded (rounding them to float32 leaves
    # the parity run above only 2-3x over its tolerance)
    backend = get_backend("tensorflow", device="cpu")
    model = backend.build_model(SMALL, nn.init_params(SMALL, 0, dtype="float64"), "float64")
    native = backend.build_optimizer(optim.SGD(0.1, momentum=0.9), model).native
    assert native.lr_variable.dtype == tf.float64 and native.learning_rate.numpy() == 0.1
    lr, mu = native._scalars(model.trainable_variables[0], native.learning_rate, 0.9)
    assert (lr.dtype, lr.numpy(), mu.numpy()) == (tf.float64, 0.1, 0.9)


# -- 15-17. RMSprop, Adagrad, Adadelta ----------------------------------------------

def test_rmsprop_alpha_vs_rho_and_eps_outside_vs_inside_the_sqrt():
    torch_defaults = inspect.signature(torch.optim.RMSprop).parameters
    keras_defaults = inspect.signature(keras.optimizers.RMSprop).parameters
    assert (torch_defaults["alpha"].default, torch_defaults["eps"].default) == (0.99, 1e-8)
    assert (keras_defaults["rho"].default, keras_defaults["epsilon"].default) == (0.9, 1e-7)
    # the same smoothing (0.99) and eps (1e-7), one step on a tiny gradient: v = 0.01*g^2;
    # torch divides by sqrt(v) + eps, Keras by sqrt(v + eps), where eps swamps v
    g, eps = 1e-6, 1e-7
    t = torch_steps(lambda p: torch.optim.RMSprop(p, lr=1.0, alpha=0.99, eps=eps), [g])
    k = keras_steps(keras.optimizers.RMSprop(learning_rate=1.0, rho=0.99, epsilon=eps), [g])
    np.testing.assert_allclose(t, -g / (0.1 * g + eps), rtol=1e-12)           # -5
    np.testing.assert_allclose(k, -g / math.sqrt(0.01 * g * g + eps), rtol=1e-4)  # -0.00316
    assert abs(t - k).max() > 4
    # crossloop: torch's formula, also centered, with momentum under a changing lr
    # (Keras's momentum buffer holds lr * the step, as its SGD does: row 7)
    agree(optim.RMSprop(1e-2, eps=1e-3))
    agree(optim.RMSprop(optim.Step(1e-2, 2, 0.5), momentum=0.9, centered=True, weight_decay=1e-2))


def test_adagrad_initial_accumulator_and_eps():
    torch_defaults = inspect.signature(torch.optim.Adagrad).parameters
    keras_defaults = inspect.signature(keras.optimizers.Adagrad).parameters
    assert (torch_defaults["initial_accumulator_value"].default, torch_defaults["eps"].default) \
        == (0, 1e-10)
    assert (keras_defaults["initial_accumulator_value"].default,
            keras_defaults["epsilon"].default) == (0.1, 1e-7)
    # lr 1, g = 1, each framework's defaults otherwise: torch's sum starts at 0 (a full
    # step of 1, eps outside the sqrt), Keras's at 0.1 (eps inside): 1/sqrt(1.1)
    t = torch_steps(lambda p: torch.optim.Adagrad(p, lr=1.0), [1.0])
    k = keras_steps(keras.optimizers.Adagrad(learning_rate=1.0), [1.0])
    np.testing.assert_allclose(t, -1 / (1 + 1e-10), rtol=1e-12)
    np.testing.assert_allclose(k, -1 / math.sqrt(1.1 + 1e-7), rtol=1e-6)   # -0.9535
    assert abs(t - k).max() > 0.04
    agree(optim.Adagrad(0.1))
    agree(optim.Adagrad(0.1, lr_decay=0.1, initial_accumulator_value=0.1, weight_decay=1e-2))


def test_adadelta_defaults():
    torch_defaults = inspect.signature(torch.optim.Adadelta).parameters
    keras_defaults = inspect.signature(keras.optimizers.Adadelta).parameters
    assert [torch_defaults[k].default for k in ("lr", "rho", "eps")] == [1.0, 0.9, 1e-6]
    assert [keras_defaults[k].default for k in ("learning_rate", "rho", "epsilon")] == [
        0.001, 0.95, 1e-7]
    # the same update rule: with torch's values Keras takes torch's step (to float32 rounding)
    t = torch_steps(lambda p: torch.optim.Adadelta(p), [1.0, 0.5])
    same = keras_steps(keras.optimizers.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6),
                       [1.0, 0.5])
    np.testing.assert_allclose(same, t, rtol=1e-5)
    # each with its defaults: one step on g = 1 is sqrt(1e-6)/sqrt(0.1 + 1e-6) = 3.2e-3 in
    # torch, 0.001 * sqrt(1e-7)/sqrt(0.05 + 1e-7) = 1.4e-6 in Keras
    t = torch_steps(lambda p: torch.optim.Adadelta(p), [1.0])
    k = keras_steps(keras.optimizers.Adadelta(), [1.0])
    np.testing.assert_allclose(t, -math.sqrt(1e-6 / (0.1 + 1e-6)), rtol=1e-12)
    np.testing.assert_allclose(k, -1e-3 * math.sqrt(1e-7 / (0.05 + 1e-7)), rtol=1e-4)
    assert abs(t / k).min() > 2000
    agree(optim.Adadelta())
    agree(optim.Adadelta(optim.Step(1.0, 2, 0.7), weight_decay=1e-2))


# -- 18. loss precision -------------------------------------------------------------

def test_keras_losses_compute_in_floatx(pair):
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(8, 10)), rng.integers(0, 10, 8)
    assert F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).dtype == torch.float64
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert keras.config.floatx() == "float32"
    assert keras_loss(y, tf.constant(logits)).dtype == tf.float32
    assert keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")(
        y, tf.constant(logits)).dtype == tf.float64
    # crossloop: both backends' loss phase keeps float64, and the values agree to rounding
    values = [b.to_numpy(b.loss(losses.CrossEntropy(), b.to_device(logits), b.to_device(y)))
              for b in pair]
    assert values[0].dtype == values[1].dtype == np.float64
    np.testing.assert_allclose(values[0], values[1], rtol=1e-14)


# -- 19-29. normalisation, attention, embeddings, sequence and regression losses ------

BN_SPEC = nn.Sequential((nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 6 * 6, 10)),
                        input_shape=(1, 12, 12), name="bn")
VOCAB, T = 13, 6


def token_batches(steps: int, n: int = 8, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random token windows and their next-token targets, for sequence models."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, VOCAB, (n, T)), rng.integers(0, VOCAB, (n, T))) for _ in range(steps)]


def sequence_spec(*middle, flatten: bool = False) -> nn.Sequential:
    """Embedding + ``middle`` + a head: per token (T, VOCAB) or, flattened, (VOCAB,)."""
    head = (nn.Flatten(), nn.Linear(T * 8, VOCAB)) if flatten else (nn.Linear(8, VOCAB),)
    return nn.Sequential((nn.Embedding(VOCAB, 8), *middle, *head), input_shape=(T,), name="seq")


def keras_bn(x: np.ndarray, **kwargs) -> keras.layers.BatchNormalization:
    layer = keras.layers.BatchNormalization(dtype="float64", **kwargs)
    layer(x, training=True)
    return layer


def test_batchnorm_momentum_convention(pair):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4))
    assert torch.nn.BatchNorm1d(4).momentum == 0.1 and keras.layers.BatchNormalization().momentum == 0.99
    assert nn.BatchNorm1d(4).momentum == nn.BatchNorm2d(4).momentum == 0.1  # crossloop's: torch's
    bn = torch.nn.BatchNorm1d(4, momentum=0.9).double()
    bn(torch.from_numpy(x))
    layer = keras_bn(x, momentum=0.9)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.9 * x.mean(0))         # new batch
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(0))       # old value
    agree(optim.SGD(0.1, momentum=0.9), BN_SPEC)


def test_batchnorm_eps(pair):
    assert torch.nn.BatchNorm2d(3).eps == 1e-5
    assert nn.BatchNorm1d(3).eps == nn.BatchNorm2d(3).eps == 1e-5  # crossloop's: torch's
    assert keras.layers.BatchNormalization().epsilon == 1e-3
    agree(optim.SGD(0.1), BN_SPEC)


def test_layernorm_eps(pair):
    assert torch.nn.LayerNorm(3).eps == 1e-5
    assert nn.LayerNorm(8).eps == 1e-5  # crossloop's: torch's
    assert keras.layers.LayerNormalization().epsilon == 1e-3
    x = np.random.default_rng(0).normal(0, 0.01, size=(4, 8))  # variance ~1e-4: eps matters
    torch_ln = F.layer_norm(torch.from_numpy(x), (8,)).numpy()
    keras_ln = keras.layers.LayerNormalization(dtype="float64")(x).numpy()
    assert np.abs(torch_ln - keras_ln).max() > 0.5
    spec = sequence_spec(nn.LayerNorm(8))
    assert_parity(spec, optim.Adam(1e-2), token_batches(STEPS), steps=STEPS)


def test_running_variance_unbiased_vs_biased(pair):
    x = np.random.default_rng(0).normal(size=(5, 3))
    bn = torch.nn.BatchNorm1d(3, momentum=1.0).double()
    bn(torch.from_numpy(x))
    np.testing.assert_allclose(bn.running_var.numpy(), x.var(0, ddof=1))        # unbiased
    np.testing.assert_allclose(keras_bn(x, momentum=0.0).moving_variance.numpy(), x.var(0))
    report = agree(optim.SGD(0.1), BN_SPEC)
    assert report.max_diff("weights") <= 1e-10  # running statistics are compared every step
    stats = [b.get_params(b.build_model(BN_SPEC, nn.init_params(BN_SPEC, 0, dtype="float64"),
                                        "float64")) for b in pair]
    assert {"1.running_mean", "1.running_var"} <= set(stats[0]) == set(stats[1])


def test_attention_weight_layout(pair):
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    assert tuple(mha.in_proj_weight.shape) == (24, 8) and tuple(mha.out_proj.weight.shape) == (8, 8)
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    layer(np.zeros((1, T, 8)), np.zeros((1, T, 8)))
    assert tuple(layer.query_dense.kernel.shape) == (8, 2, 4)                      # (E, H, D)
    assert tuple(layer.output_dense.kernel.shape) == (2, 4, 8)                     # (H, D, E)
    spec = sequence_spec(nn.SelfAttention(8, 2))
    params = nn.init_params(spec, 0, dtype="float64")
    for b in pair:
        got = b.get_params(b.build_model(spec, params, "float64"))
        assert got["1.in_proj_weight"].shape == (24, 8)
    assert_parity(spec, optim.Adam(1e-2), token_batches(STEPS), steps=STEPS)


def test_causal_mask_meaning(pair):
    x = np.random.default_rng(0).normal(size=(2, T, 8))
    allowed = np.tril(np.ones((T, T), bool))
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    t = torch.from_numpy(x)
    masked = mha(t, t, t, attn_mask=torch.from_numpy(~allowed), need_weights=False)[0]
    causal = mha(t, t, t, attn_mask=torch.from_numpy(allowed), need_weights=False)[0]
    # torch: True = may NOT attend; Keras (attention_mask, use_causal_mask): True = may attend
    assert np.abs(masked.detach().numpy() - causal.detach().numpy()).max() > 1e-3
    assert "use_causal_mask" in inspect.signature(keras.layers.MultiHeadAttention.call).parameters
    spec = sequence_spec(nn.SelfAttention(8, 2, causal=True))
    params = nn.init_params(spec, 0, dtype="float64")
    a, b = token_batches(1)[0][0], token_batches(1, seed=1)[0][0]
    b[:, :3] = a[:, :3]  # the same first three tokens
    for backend in pair:
        model = backend.build_model(spec, params, "float64")
        out = [backend.to_numpy(backend.forward(model, backend.to_device(v))) for v in (a, b)]
        np.testing.assert_allclose(out[0][:, :3], out[1][:, :3], rtol=0, atol=1e-12)
    assert_parity(spec, optim.Adam(1e-2), token_batches(STEPS), steps=STEPS)


def test_sequence_cross_entropy_layout(pair):
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(4, T, VOCAB)), rng.integers(0, VOCAB, (4, T))
    with pytest.raises(RuntimeError):  # torch wants classes on axis 1: (N, C, T)
        F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    expected = F.cross_entropy(torch.from_numpy(logits).permute(0, 2, 1), torch.from_numpy(y)).item()
    tf_value = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)))
    assert abs(tf_value - expected) < 1e-12  # TF: classes on the last axis, (N, T, C)
    for b in pair:
        got = b.to_numpy(b.loss(losses.CrossEntropy(), b.to_device(logits), b.to_device(y)))
        assert abs(float(got) - expected) <= 1e-12
    assert_parity(sequence_spec(), optim.SGD(0.5), token_batches(STEPS), steps=STEPS)


def test_embedding_initialisation_and_gradients(pair):
    torch.manual_seed(0)
    weight = torch.nn.Embedding(1000, 16).weight.detach().numpy()
    assert 0.9 < weight.std() < 1.1                                              # N(0, 1)
    layer = keras.layers.Embedding(1000, 16)
    layer.build((None,))
    assert np.abs(layer.embeddings.numpy()).max() <= 0.05                        # U(-0.05, 0.05)
    spec = sequence_spec()
    torch_like, keras_like = (nn.init_params(spec, 0, init=i)["0.weight"] for i in nn.INITS)
    assert 0.9 < torch_like.std() < 1.1 and np.abs(keras_like).max() <= 0.05
    ids = tf.constant([[1, 2]])
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(layer(ids))
    assert isinstance(tape.gradient(out, layer.embeddings), tf.IndexedSlices)  # torch: dense
    x, y = token_batches(1)[0]
    grads = []
    for b in pair:
        model = b.build_model(spec, nn.init_params(spec, 0, dtype="float64"), "float64")
        _, _, g = b.gradients(model, losses.CrossEntropy(), b.to_device(x), b.to_device(y))
        assert not any(isinstance(t, tf.IndexedSlices) for t in g)  # dense, as torch's
        grads.append(b.canonical_gradients(model, g)["0.weight"])
    np.testing.assert_allclose(grads[0], grads[1], rtol=0, atol=1e-12)
    assert_parity(spec, optim.SGD(0.5, momentum=0.9), token_batches(STEPS), steps=STEPS)


def test_label_smoothing(pair):
    assert "label_smoothing" in inspect.signature(F.cross_entropy).parameters
    assert "label_smoothing" not in inspect.signature(
        keras.losses.SparseCategoricalCrossentropy).parameters  # Keras: one-hot targets only
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(8, 10)), rng.integers(0, 10, 8)
    smooth = losses.CrossEntropy(label_smoothing=0.1)
    expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), label_smoothing=0.1)
    assert abs(expected.item() - F.cross_entropy(torch.from_numpy(logits),
                                                 torch.from_numpy(y)).item()) > 0.01
    for b in pair:
        got = b.to_numpy(b.loss(smooth, b.to_device(logits), b.to_device(y)))
        assert abs(float(got) - expected.item()) <= 1e-12
    assert_parity(sequence_spec(), optim.SGD(0.5), token_batches(STEPS), steps=STEPS, loss=smooth)


def test_smooth_l1_beta_vs_huber_delta(pair):
    rng = np.random.default_rng(0)
    out, target = rng.normal(0, 3, size=(16, 4)), rng.normal(0, 3, size=(16, 4))
    torch_value = F.smooth_l1_loss(torch.from_numpy(out), torch.from_numpy(target), beta=2.0).item()
    huber = float(keras.losses.Huber(delta=2.0)(target, out))
    assert abs(huber - 2.0 * torch_value) < 1e-6  # Huber(delta) = delta * SmoothL1(beta=delta)
    for spec in (losses.SmoothL1(2.0), losses.SmoothL1(0.5), losses.L1(), losses.BCEWithLogits()):
        t = 1 / (1 + np.exp(-target)) if isinstance(spec, losses.BCEWithLogits) else target
        native = {losses.SmoothL1: lambda a, b, s: F.smooth_l1_loss(a, b, beta=s.beta),
                  losses.L1: lambda a, b, s: F.l1_loss(a, b),
                  losses.BCEWithLogits: lambda a, b, s: F.binary_cross_entropy_with_logits(a, b)}
        expected = native[type(spec)](torch.from_numpy(out), torch.from_numpy(t), spec).item()
        for b in pair:
            got = float(b.to_numpy(b.loss(spec, b.to_device(out), b.to_device(t))))
            assert abs(got - expected) <= 1e-12, spec
    data = [(x, rng.normal(size=(len(x), 10))) for x, _ in synthetic_batches(STEPS, (1, 12, 12))]
    assert_parity(SMALL, optim.SGD(0.05), data, steps=STEPS, loss=losses.SmoothL1(0.5))


def test_gelu_constants_precision(pair):
    x = np.random.default_rng(0).normal(0, 3, size=1000)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert np.abs(F.gelu(torch.from_numpy(x)).numpy() - exact).max() < 1e-14
    assert np.abs(tf.nn.gelu(tf.constant(x)).numpy() - exact).max() > 1e-10   # float32 constants
    assert np.abs(keras.activations.gelu(tf.constant(x)).numpy() - exact).max() > 1e-10
    for approximate in ("none", "tanh"):
        spec = sequence_spec(nn.GELU(approximate))
        assert_parity(spec, optim.SGD(0.5), token_batches(STEPS), steps=STEPS)


def test_relu_of_nan_in_a_traced_float32_step(pair):
    """oneDNN fuses MatMul + BiasAdd + Relu in a traced float32 TensorFlow graph, and
    the fused ReLU turns NaN into 0; eager TensorFlow and torch keep the NaN."""
    x = np.array([[np.nan, 1.0], [1.0, 2.0]], np.float32)
    w, b = np.array([[1.0, -1.0], [0.5, 0.5]], np.float32), np.array([0.1, 0.1], np.float32)
    assert torch.isnan(torch.relu(torch.from_numpy(x) @ torch.from_numpy(w) + torch.from_numpy(b))[0]).all()
    layer = lambda v: tf.nn.relu(tf.matmul(v, w) + b)  # noqa: E731
    assert np.isnan(layer(tf.constant(x)).numpy()[0]).all()                    # eager: NaN
    assert (tf.function(layer)(tf.constant(x)).numpy()[0] == 0).all()          # traced: 0
    # crossloop: Batches refuse NaN, and with a native pipeline the guard stops both
    # backends (TensorFlow's loss stays finite; the guard checks the weights too)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 13)).astype("float32"), rng.integers(0, 3, 16)
    x[0, 0] = np.nan
    with pytest.raises(DataError, match="the inputs of sample 0 hold NaN"):
        Batches(x, y, 8)
    spec = nn.Sequential([nn.Linear(13, 8), nn.ReLU(), nn.Linear(8, 3)], input_shape=(13,))
    for backend in pair:
        trainer = Trainer(spec, optim.SGD(0.1), backend=backend, callbacks=[NonFiniteGuard()])
        with pytest.raises(NonFiniteError, match="(?i)check the data for NaN"):
            trainer.fit([(x[:8], y[:8]), (x[8:], y[8:])], epochs=2)
        assert trainer.epoch <= 1
