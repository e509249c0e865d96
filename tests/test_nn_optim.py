"""Neutral specs: shape checking, NumPy initialisation, schedules and optimizer validation."""

import math
import re

import numpy as np
import pytest

from crossloop import losses, nn, optim


@pytest.mark.parametrize("name", sorted(nn.PRESETS))
def test_presets_end_in_their_classes(name):
    spec = nn.preset(name)
    assert spec.shapes()[-1][-1] == spec.num_classes == (96 if name == "tiny-gpt" else 10)


def test_shape_mismatch_names_layer_and_fix():
    with pytest.raises(ValueError, match=r"layer 2 \(Linear\) expects \(100,\).*in_features=784"):
        nn.Sequential((nn.Flatten(), nn.ReLU(), nn.Linear(100, 10)))


@pytest.mark.parametrize("make, words", [
    (lambda: nn.Sequential([], input_shape=(13,)), "Sequential 'model' has no layers"),
    (lambda: nn.Linear(0, 3), "Linear in_features must be an int >= 1, got 0"),
    (lambda: nn.Linear(4, 2.5), "Linear out_features must be an int >= 1, got 2.5"),
    (lambda: nn.Dropout(1.5), r"Dropout p must be in \[0, 1\), got 1.5"),
    (lambda: nn.Dropout(-0.1), r"Dropout p must be in \[0, 1\)"),
    (lambda: nn.Conv2d(1, 4, 0), "Conv2d kernel_size must be an int >= 1, got 0"),
    (lambda: nn.Conv2d(1, 4, 3, stride=0), "Conv2d stride must be an int >= 1"),
    (lambda: nn.Conv2d(1, 4, 3, padding=-1), "Conv2d padding must be an int >= 0 or 'same'"),
    (lambda: nn.MaxPool2d(0), "MaxPool2d kernel_size must be an int >= 1"),
    (lambda: nn.AvgPool2d(2, stride=0), "AvgPool2d stride must be an int >= 1"),
    (lambda: nn.BatchNorm2d(0), "BatchNorm2d num_features must be an int >= 1"),
    (lambda: nn.BatchNorm1d(4, eps=0), "BatchNorm1d eps must be a number > 0"),
    (lambda: nn.BatchNorm2d(4, momentum=2), r"BatchNorm2d momentum must be in \[0, 1\]"),
    (lambda: nn.LayerNorm(8, eps=-1), "LayerNorm eps must be a number > 0"),
    (lambda: nn.Embedding(0, 8), "Embedding num_embeddings must be an int >= 1"),
    (lambda: nn.PositionalEmbedding(16, 0), "PositionalEmbedding embedding_dim must be"),
    (lambda: nn.SelfAttention(8, 0), "SelfAttention num_heads must be an int >= 1"),
    (lambda: nn.SelfAttention(8, 3), "embed_dim 8 is not divisible by num_heads 3"),
    (lambda: nn.Tensor((2,), "uniform"), "Tensor init 'uniform' is not one of weight, bias"),
])
def test_a_layer_with_a_bad_size_fails_when_made(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_settings_torch_allows_but_that_are_unlikely_warn_once_where_made():
    with pytest.warns(optim.UnlikelySettingWarning, match="SGD momentum 1.5 is 1 or more") as got:
        optim.SGD(0.1, momentum=1.5)
    assert got[0].filename == __file__  # points at the caller's line
    with pytest.warns(optim.UnlikelySettingWarning, match="Cosine warmup_steps 20 is not "
                      r"shorter than the schedule \(total_steps 10\)"):
        optim.Cosine(0.1, total_steps=10, warmup_steps=20)
    with pytest.warns(optim.UnlikelySettingWarning, match="RMSprop momentum 1 is 1 or more"):
        optim.RMSprop(0.1, momentum=1.0)


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="lenet5"):
        nn.preset("resnet")


def test_lenet_param_shapes_are_canonical():
    shapes = nn.lenet5().param_shapes()
    assert shapes["0.weight"] == (6, 1, 5, 5)       # OIHW
    assert shapes["7.weight"] == (120, 400)          # (out, in)
    assert nn.lenet5().flatten_sources() == {"7": (16, 5, 5)}


def test_init_is_seeded_and_uses_torch_bounds():
    spec = nn.lenet5()
    a, b = nn.init_params(spec, 3), nn.init_params(spec, 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], nn.init_params(spec, 4)["0.weight"])
    bound = 1 / math.sqrt(400)
    w = a["7.weight"]
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_glorot_init_has_zero_bias():
    params = nn.init_params(nn.mlp(), 0, init="glorot")
    assert not params["1.bias"].any()
    assert np.abs(params["1.weight"]).max() <= math.sqrt(6 / (784 + 128))


def test_check_params_names_first_mismatch():
    spec = nn.mlp()
    params = nn.init_params(spec, 0)
    params["3.weight"] = params["3.weight"].T
    with pytest.raises(ValueError, match=r"'3.weight' has shape \(128, 10\), the model expects \(10, 128\)"):
        nn.check_params(spec.param_shapes(), params)


def test_schedules_are_functions_of_step():
    assert optim.Constant(0.1)(1000) == 0.1
    w = optim.Warmup(1.0, warmup_steps=4, total_steps=14)
    assert [w(s) for s in (0, 3, 4, 9, 14, 20)] == [0.25, 1.0, 1.0, 0.5, 0.0, 0.0]
    c = optim.Cosine(1.0, total_steps=10)
    assert c(0) == 1.0 and c(5) == pytest.approx(0.5) and c(10) == pytest.approx(0.0)
    assert optim.Cosine(1.0, 10, warmup_steps=2)(0) == 0.5
    assert optim.Step(1.0, step_size=3, gamma=0.5)(7) == 0.25


def test_optimizer_specs_validate():
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="clip_norm"):
        optim.Adam(clip_norm=0)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(-1.0)
    with pytest.raises(ValueError, match="sgd, adam, adamw, rmsprop, adagrad, adadelta"):
        optim.optimizer("lamb", 0.1)
    assert isinstance(optim.Adam(1e-3).lr, optim.Constant)


@pytest.mark.parametrize("spec, message", [
    (lambda: optim.RMSprop(alpha=1.0), "RMSprop alpha must be a finite number >= 0 and < 1, got 1.0"),
    (lambda: optim.RMSprop(alpha=float("nan")), "RMSprop alpha must be a finite number"),
    (lambda: optim.RMSprop(eps=0), "RMSprop eps must be a finite number > 0, got 0"),
    (lambda: optim.RMSprop(momentum=-0.5), "RMSprop momentum must be a finite number >= 0"),
    (lambda: optim.RMSprop(centered=1), "RMSprop centered must be True or False, got 1"),
    (lambda: optim.Adagrad(lr_decay=float("inf")), "Adagrad lr_decay must be a finite number >= 0"),
    (lambda: optim.Adagrad(initial_accumulator_value=-0.1),
     "Adagrad initial_accumulator_value must be a finite number >= 0, got -0.1"),
    (lambda: optim.Adagrad(weight_decay=-1), "Adagrad weight_decay must be a finite number >= 0"),
    (lambda: optim.Adadelta(rho=1.5), "Adadelta rho must be a finite number >= 0 and < 1, got 1.5"),
    (lambda: optim.Adadelta(lr=0), "learning rate must be a finite number > 0"),
    (lambda: optim.Adadelta(clip_norm=-1), "Adadelta clip_norm must be a finite number > 0"),
])
def test_new_optimizer_specs_validate(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        spec()


def test_optimizer_defaults_are_torchs_and_describe_themselves():
    assert optim.RMSprop().describe() == {
        "type": "RMSprop", "lr": {"type": "Constant", "lr": 0.01}, "alpha": 0.99, "eps": 1e-8,
        "weight_decay": 0.0, "momentum": 0.0, "centered": False, "clip_norm": None}
    adagrad, adadelta = optim.Adagrad(), optim.Adadelta()
    assert (adagrad.lr(0), adagrad.lr_decay, adagrad.initial_accumulator_value, adagrad.eps) == (
        0.01, 0.0, 0.0, 1e-10)
    assert (adadelta.lr(0), adadelta.rho, adadelta.eps) == (1.0, 0.9, 1e-6)
    assert adadelta.describe()["type"] == "Adadelta"


def test_slots_are_torchs_state_names():
    assert optim.slots(optim.RMSprop()) == ("square_avg",)
    assert optim.slots(optim.RMSprop(momentum=0.9, centered=True)) == (
        "square_avg", "momentum_buffer", "grad_avg")
    assert optim.slots(optim.Adagrad()) == ("sum",)
    assert optim.slots(optim.Adadelta()) == ("square_avg", "acc_delta")
    assert optim.slots(optim.SGD()) == () and optim.slots(optim.SGD(momentum=0.9)) == (
        "momentum_buffer",)


def test_loss_lookup():
    assert losses.get("mse") == losses.MSE()
    with pytest.raises(ValueError, match="cross_entropy"):
        losses.get("hinge")
