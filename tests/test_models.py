"""The real models: presets and their recipes, running statistics through checkpoints
across backends, language-model and regression metrics, float64 parity of the
residual and transformer presets."""

from __future__ import annotations

import numpy as np
import pytest

import crossloop
from crossloop import checkpoint, losses, nn, optim
from crossloop.config import ConfigError
from crossloop.experiment import Experiment
from crossloop.testing import assert_parity, random_batch

BACKENDS = ("torch", "tensorflow")
two_backends = pytest.mark.skipif(len(crossloop.available_backends()) < 2,
                                  reason="needs two installed backends")


def test_resnet20_matches_he_et_al():
    spec = nn.resnet20(input_shape=(3, 32, 32))
    assert 0.26e6 < nn.count_params(spec) < 0.28e6  # "0.27M" in the paper
    assert sum(isinstance(leaf, nn.Conv2d) for _, leaf in spec.leaves()) == 19 + 2  # + projections
    assert spec.shapes()[-1] == (10,) and nn.resnet20().shapes()[-1] == (10,)  # 1x28x28 too
    assert "layer3.2.bn2.running_var" in spec.buffers()
    assert spec.param_shapes()["layer2.0.shortcut.0.weight"] == (32, 16, 1, 1)


def test_tiny_gpt_and_pytorch_mnist_shapes():
    gpt = nn.tiny_gpt(num_classes=50, input_shape=(32,))
    assert gpt.shapes()[-1] == (32, 50)
    assert gpt.param_shapes()["h.1.attn.attn.in_proj_weight"] == (192, 64)
    assert nn.count_params(nn.pytorch_mnist()) == 1_199_882  # as PyTorch's examples/mnist
    assert nn.pytorch_mnist().flatten_sources() == {"fc1": (64, 12, 12)}
    assert nn.count_params(nn.keras_mnist_convnet()) == 34_826  # as the Keras example


def test_recipe_fills_unset_settings_and_explicit_ones_win():
    exp = Experiment.from_dict({"model": "resnet20", "recipe": True, "epochs": 3})
    assert (exp.optimizer, exp.lr, exp.momentum, exp.weight_decay, exp.batch_size, exp.epochs) == (
        "sgd", 0.1, 0.9, 1e-4, 128, 3)
    gpt = Experiment.from_dict({"model": "tiny-gpt", "recipe": True})
    assert (gpt.optimizer, gpt.clip_norm, gpt.dataset, gpt.warmup_steps) == (
        "adamw", 1.0, "python-stdlib", 100)
    assert Experiment.from_dict({"model": "keras-mnist-convnet"}).optimizer == "adam"
    with pytest.raises(ConfigError, match="model 'lenet5' has no published recipe"):
        Experiment.from_dict({"model": "lenet5", "recipe": True})


def test_pytorch_mnist_recipe_is_adadelta_with_step_decay():
    if "adadelta" not in optim.OPTIMIZERS:
        pytest.skip("Adadelta arrives with the optimizers of issue 10 part 4 (branch optim)")
    exp = Experiment.from_dict({"model": "pytorch-mnist", "recipe": True})
    opt = exp.optimizer_spec(steps_per_epoch=10)
    assert (exp.optimizer, exp.batch_size, exp.epochs) == ("adadelta", 64, 14)
    assert opt.lr(0) == 1.0 and opt.lr(10) == pytest.approx(0.7)


@two_backends
def test_resnet_checkpoint_from_torch_resumes_on_tensorflow(tmp_path):
    """Running statistics survive the round trip exactly; training continues within
    float32 tolerance of the run that stayed on torch."""
    spec = nn.resnet20(input_shape=(1, 12, 12), blocks=1)
    batches = [random_batch(spec, 16, seed=i) for i in range(4)]
    opt = optim.SGD(0.02, momentum=0.9, weight_decay=1e-4)
    first = crossloop.Trainer(spec, opt, backend="torch", seed=1)
    for x, y in batches[:2]:
        first.train_batch(x, y)
    path = checkpoint.save(tmp_path / "last.safetensors", first.state_dict())
    saved = first.params()
    assert np.any(saved["bn1.running_mean"] != 0)  # the statistics moved
    resumed = crossloop.Trainer(spec, opt, backend="tensorflow", seed=1)
    checkpoint.restore(resumed, path)
    for name, value in resumed.params().items():
        np.testing.assert_array_equal(value, saved[name], err_msg=name)
    for trainer in (first, resumed):
        for x, y in batches[2:]:
            trainer.train_batch(x, y)
    a, b = first.params(), resumed.params()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-4, err_msg=name)


@two_backends
def test_resnet_trains_the_same_in_float64():
    spec = nn.resnet20(input_shape=(1, 12, 12), blocks=1)
    data = [random_batch(spec, 8, seed=i, dtype="float64") for i in range(4)]
    report = assert_parity(spec, optim.SGD(0.05, momentum=0.9, weight_decay=5e-4), data, steps=4)
    assert report.max_diff("weights") <= 1e-10


@two_backends
def test_tiny_gpt_trains_the_same_in_float64():
    spec = nn.tiny_gpt(num_classes=20, input_shape=(12,), dim=16, heads=2)
    data = [random_batch(spec, 4, seed=i) for i in range(4)]
    opt = optim.AdamW(optim.Cosine(3e-3, 4, warmup_steps=1), clip_norm=0.5)
    assert_parity(spec, opt, data, steps=4, loss=losses.CrossEntropy(label_smoothing=0.1))


def test_language_model_reports_perplexity(backend):
    spec = nn.tiny_gpt(num_classes=20, input_shape=(12,), dim=16, heads=2)
    trainer = crossloop.Trainer(spec, optim.Adam(1e-3), backend=backend, dtype="float64")
    x, y = random_batch(spec, 8)
    trainer.train_batch(x, y)
    results = trainer.evaluate(crossloop.data.Batches(x, y, 4))
    assert results["perplexity"] == pytest.approx(np.exp(results["loss"]))
    assert 10 < results["perplexity"] < 40  # about the vocabulary at the start
    assert "mae" not in results


def test_regression_reports_mae(backend):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)), rng.normal(size=(16, 2))
    spec = nn.Sequential((nn.Linear(5, 2),), input_shape=(5,))
    trainer = crossloop.Trainer(spec, optim.SGD(0.1), backend=backend, loss="l1", dtype="float64")
    params = trainer.params()
    results = trainer.evaluate(crossloop.data.Batches(x, y, 4, dtype="float64"))
    expected = np.abs(x @ params["0.weight"].T + params["0.bias"] - y).mean()
    assert results["mae"] == pytest.approx(expected, rel=1e-12)
    assert results["loss"] == pytest.approx(expected, rel=1e-12)  # l1's loss is the MAE
    assert "perplexity" not in results


@two_backends
def test_portable_weights_carry_running_statistics(tmp_path):
    spec = nn.resnet20(input_shape=(1, 12, 12), blocks=1)
    torch_b, tf_b = (crossloop.get_backend(b, device="cpu") for b in BACKENDS)
    model = torch_b.build_model(spec, nn.init_params(spec, 0))
    x, _ = random_batch(spec, 8)
    torch_b.forward(model, torch_b.to_device(x), training=True)  # moves the statistics
    path = crossloop.save_params(tmp_path / "w.safetensors", torch_b.get_params(model), spec)
    params, header = crossloop.load_params(path, spec)
    assert "layer1.0.bn2.running_var" in header["tensors"]
    loaded = tf_b.get_params(tf_b.build_model(spec, params))
    for name, value in torch_b.get_params(model).items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    assert np.any(loaded["bn1.running_var"] != 1)
