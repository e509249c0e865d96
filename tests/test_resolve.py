"""Your own model and data from the command line: ``--model package.module:function`` and
``--dataset package.module:function``, beside the registered names; and the data settings
(loss, monitor, text options) that come with data beyond MNIST."""

from __future__ import annotations

import json
import re
import sys
import textwrap

import numpy as np
import pytest

from crossloop import commands
from crossloop.experiment import ConfigError, Experiment
from crossloop.resolve import ResolveError, load_data_set, model_spec

MODELS = textwrap.dedent("""
    from crossloop import nn

    def small_cnn(input_shape, num_classes):
        c, h, w = input_shape
        return nn.Sequential((nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(4 * (h // 2) * (w // 2), num_classes)),
                             input_shape=input_shape, name="small_cnn")

    def not_a_model():
        return [1, 2, 3]
""")
DATA = textwrap.dedent("""
    import numpy as np

    def load():
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 3, 256)
        images = rng.normal(size=(256, 1, 8, 8)).astype(np.float32)
        images[np.arange(256), 0, labels] += 3.0  # the bright row is the class
        return (images[:192], labels[:192]), (images[192:], labels[192:])

    def bad():
        return {"x": 1}
""")


@pytest.fixture
def mypkg(tmp_path, monkeypatch):
    """A package ``mypkg`` (models.py, data.py) in a temporary folder made the current one."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "models.py").write_text(MODELS)
    (tmp_path / "mypkg" / "data.py").write_text(DATA)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the folder first
    for name in ("mypkg", "mypkg.models", "mypkg.data"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_crossloop_train_with_your_own_model_and_data(mypkg, backend, capsys):
    out = mypkg / "run"
    argv = ["train", "--model", "mypkg.models:small_cnn", "--dataset", "mypkg.data:load",
            "--epochs", "3", "--batch-size", "16", "--lr", "0.02", "--backend", backend.name,
            "--device", "cpu", "--out-dir", str(out), "--no-plot", "--no-tensorboard"]
    assert commands.main(argv) == 0, capsys.readouterr().err
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3 and history[-1]["test_accuracy"] > 0.6
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["dataset"]) == ("mypkg.models:small_cnn", "mypkg.data:load")
    # the config file takes the same strings and reruns the same experiment
    assert commands.main(["train", "--config", str(out / "config.json"), "--out-dir",
                          str(mypkg / "again"), "--no-plot", "--no-tensorboard"]) == 0
    rerun = json.loads((mypkg / "again" / "history.json").read_text())
    assert [h["test_loss"] for h in rerun] == [h["test_loss"] for h in history]


@pytest.mark.parametrize("flags, words", [
    (["--model", "mypkg.nothere:f"], "model mypkg.nothere:f: cannot import module 'mypkg.nothere'"),
    (["--model", "mypkg.models:missing"], r"module 'mypkg.models' \(/.*mypkg/models.py\) has no "
                                          "function 'missing'"),
    (["--model", "mypkg.models:not_a_model"], "model mypkg.models:not_a_model returned a list of "
                                              "3, not a crossloop model spec"),
    (["--dataset", "mypkg.data:bad"], "dataset mypkg.data:bad returned a builtins.dict; it must "
                                      "return a crossloop.data.Dataset"),
    (["--model", "mypkg.models"], "model 'mypkg.models' is not one of mlp, linear, conv1, lenet5"),
])
def test_a_bad_reference_names_the_module_and_what_it_returned(mypkg, capsys, flags, words):
    argv = ["train", "--dataset", "mypkg.data:load", "--model", "mlp", "--epochs", "1",
            "--out-dir", str(mypkg / "run"), *flags]
    assert commands.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crossloop train: error: ")
    assert re.search(words, err), err


def test_references_from_python(mypkg):
    sys.path.insert(0, str(mypkg))
    data = load_data_set("mypkg.data:load")
    assert data.num_classes == 3 and data.train_inputs.shape == (192, 1, 8, 8)
    spec = model_spec("mypkg.models:small_cnn", input_shape=(1, 8, 8), num_classes=3)
    assert spec.name == "small_cnn" and spec.shapes()[-1] == (3,)
    assert model_spec("mlp", input_shape=(30,), num_classes=2).param_shapes()["1.weight"] == (128, 30)
    with pytest.raises(ResolveError, match="not of the form package.module:function"):
        model_spec("my-pkg:f")
    with pytest.raises(ResolveError, match="model mypkg.models:small_cnn needs input_shape, "
                                           "num_classes.*give input_shape, num_classes defaults"):
        model_spec("mypkg.models:small_cnn")


def test_run_experiment_fits_your_model_to_the_batches_you_pass(mypkg, tmp_path):
    from crossloop.data import Batches
    from crossloop.runner import run_experiment
    sys.path.insert(0, str(mypkg))
    ds = load_data_set("mypkg.data:load")
    data = (Batches(ds.train_inputs, ds.train_targets, 64),
            Batches(ds.test_inputs, ds.test_targets, 64, shuffle=False))
    exp = Experiment(model="mypkg.models:small_cnn", epochs=1, backend="torch", device="cpu",
                     out_dir=str(tmp_path / "run"), plot=False, tensorboard=False)
    trainer, _ = run_experiment(exp, data=data)
    assert trainer.spec.input_shape == (1, 8, 8) and trainer.spec.num_classes == 3
    with pytest.raises(ConfigError, match="model mlp does not fit the data you passed"):
        run_experiment(Experiment(model="mlp", backend="torch", device="cpu",
                                  out_dir=str(tmp_path / "mlp")),
                       data=(Batches(np.ones((8, 5)), np.ones(8), 4),) * 2)  # float targets


@pytest.mark.parametrize("values, words", [
    ({"loss": "mse"}, "monitor test_accuracy means nothing with loss mse"),
    ({"loss": "mse", "monitor": "accuracy"}, "monitor accuracy means nothing"),
    ({"seq_len": 64}, "seq_len applies only with dataset python-stdlib or text"),
    ({"dataset": "digits", "tokens": "byte"}, "tokens applies only with dataset"),
    ({"augment": "mirror"}, "augment 'mirror' is not one of none, crop-flip"),
])
def test_data_settings_are_checked(values, words):
    if values.get("loss") == "mse" and "monitor" not in values:
        values = {**values, "monitor": "test_accuracy"}
    with pytest.raises(ConfigError, match=words):
        Experiment.from_dict(values)


def test_mse_monitors_the_test_loss_by_default():
    assert Experiment(loss="mse").monitored == "test_loss"
    assert Experiment().monitored == "test_accuracy"
    assert Experiment(dataset="python-stdlib", seq_len=64, tokens="byte").seq_len == 64


def test_crossloop_train_regression_reports_r2(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    argv = ["train", "--dataset", "diabetes", "--model", "linear", "--loss", "mse",
            "--optimizer", "sgd", "--lr", "0.02", "--schedule", "constant", "--epochs", "20",
            "--batch-size", "32", "--out-dir", str(out), "--no-plot", "--no-tensorboard"]
    assert commands.main(argv) == 0, capsys.readouterr().err
    assert "final test R^2 0." in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["test_r2"] > 0.4


def test_a_model_that_does_not_fit_the_data_set_is_a_bad_setting(tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert commands.main(["train", "--dataset", "digits", "--out-dir", str(tmp_path / "r")]) == 2
    assert ("model lenet5 does not fit data set digits (loss cross_entropy): model lenet5 takes "
            "inputs of shape (1, 28, 28), the data gives (1, 8, 8)") in capsys.readouterr().err


def test_a_preset_that_does_not_fit_the_data_set_is_a_settings_error(tiny_mnist, tmp_path, capsys):
    # tiny-gpt takes token windows; MNIST gives images: one line, exit 2, no traceback
    assert commands.main(["train", "--model", "tiny-gpt", "--data-dir", str(tiny_mnist),
                          "--epochs", "1", "--out-dir", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "model tiny-gpt does not fit" in err and "wpe" in err and "Traceback" not in err
