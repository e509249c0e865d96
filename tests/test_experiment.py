"""Experiments: settings from flags and files (crossloop.experiment), the run they make
(crossloop.runner) and `crossloop train` end to end.

The end-to-end runs use tiny generated IDX files, so they need no real data.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from conftest import SignalAt
from crossloop import commands, optim
from crossloop.commands import options
from crossloop.commands.train import add_arguments
from crossloop.experiment import ConfigError, Experiment
from crossloop.prepare import load_data
from crossloop.runner import output_dir


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


# -- settings --------------------------------------------------------------------

def test_defaults_are_the_example_script_s():
    exp = Experiment()
    assert (exp.dataset, exp.model, exp.optimizer, exp.lr, exp.schedule, exp.batch_size,
            exp.epochs) == ("mnist", "lenet5", "adam", 2e-3, "cosine", 64, 2)


def test_help_lists_every_setting_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        commands.main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    helps = {action.dest: action.help for action in parser._actions}
    for f in fields(Experiment):
        assert f"--{f.name.replace('_', '-')}" in text
        assert "(default: " in helps[f.name]
        if f.default is not None:
            assert helps[f.name].endswith(f"(default: {f.default})")


def test_flags_override_a_toml_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "mlp"\nepochs = 3\nlr = 0.01\nschedule = "constant"\n')
    exp = options.settings(parse("--config", str(path), "--epochs", "1"))
    assert (exp.model, exp.epochs, exp.lr, exp.schedule) == ("mlp", 1, 0.01, "constant")
    assert exp.batch_size == Experiment().batch_size  # neither file nor flag: the default


def test_json_file_with_dashed_keys_and_an_int_for_a_float(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"batch-size": 32, "lr": 1, "clip_norm": 2}))
    exp = options.settings(parse("--config", str(path)))
    assert (exp.batch_size, exp.lr, exp.clip_norm) == (32, 1.0, 2.0)
    assert isinstance(exp.lr, float)


def test_unknown_keys_are_named_with_the_valid_ones(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text("lrate = 0.1\nepoch = 3\n")
    with pytest.raises(ConfigError) as error:
        options.settings(parse("--config", str(path)))
    message = str(error.value)
    assert str(path) in message and "'lrate', 'epoch'" in message
    assert "valid keys: dataset, data_source" in message and "batch_size" in message
    assert commands.main(["train", "--config", str(path)]) == 2
    assert "unknown settings 'lrate', 'epoch'" in capsys.readouterr().err


@pytest.mark.parametrize("values, words", [
    ({"epochs": "3"}, "epochs must be int"),
    ({"nesterov": 1}, "nesterov must be bool"),
    ({"model": "resnet"}, "model 'resnet' is not one of mlp, linear, conv1, lenet5"),
    ({"lr": -0.1}, "lr must be > 0"),
    ({"batch_size": 0}, "batch_size must be > 0"),
    ({"momentum": 0.9}, "momentum applies only with optimizer sgd or rmsprop, not optimizer 'adam'"),
    ({"alpha": 0.9}, "alpha applies only with optimizer rmsprop, not optimizer 'adam'"),
    ({"rho": 0.95, "optimizer": "adagrad"}, "rho applies only with optimizer adadelta"),
    ({"eps": 1e-7, "optimizer": "sgd"}, "eps applies only with optimizer adam or adamw or rmsprop"),
    ({"optimizer": "rmsprop", "alpha": 1.2},  # optim's own check, as a ConfigError
     "RMSprop alpha must be a finite number >= 0 and < 1, got 1.2"),
    ({"optimizer": "adagrad", "lr_decay": -1.0}, "Adagrad lr_decay must be a finite number >= 0"),
    ({"optimizer": "adadelta", "eps": float("nan")}, "eps must be a finite number, got nan"),
    ({"warmup_steps": 10, "schedule": "step"},
     "warmup_steps applies only with schedule cosine or warmup"),
    ({"optimizer": "sgd", "nesterov": True}, "nesterov=True"),  # optim's own check: needs momentum
    ({"dataset": "imagenet"}, "dataset 'imagenet' is not one of mnist, fashion-mnist"),
    ({"seed": 2**32}, "seed must be <= 4294967295"),
    ({"name": "../../etc/x"}, "name '../../etc/x' is a path, not a name"),
    ({"name": ".."}, "name '..' is a path, not a name"),
    ({"dataset": "text", "model": "tiny-gpt"}, "data set text reads local files: give --data-dir"),
])
def test_bad_settings_are_named(values, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        Experiment.from_dict(values)


def test_a_file_that_is_not_a_table_or_not_parseable(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.toml").write_text("epochs = \n")
    with pytest.raises(ConfigError, match="expected a table"):
        Experiment.from_file(tmp_path / "list.json")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        Experiment.from_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="must end in .toml or .json"):
        Experiment.from_file(tmp_path / "run.yaml")


def test_train_and_parity_build_the_same_experiment_from_one_file(tmp_path):
    """One settings object: a config file means the same run to both commands, and a
    flag has the same default and the same checks in both."""
    from crossloop.commands import parity, train

    path = tmp_path / "run.toml"
    path.write_text('model = "mlp"\noptimizer = "sgd"\nmomentum = 0.9\nlr = 0.05\n'
                    'schedule = "step"\ngamma = 0.5\nbatch_size = 32\nseed = 4\n'
                    'epochs = 3\ntensorboard = false\n')
    built = {}
    for command in (train, parity):
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        built[command.__name__] = options.settings(parser.parse_args(["--config", str(path)]))
        with pytest.raises(ConfigError, match="momentum applies only with optimizer sgd"):
            options.settings(parser.parse_args(["--config", str(path), "--optimizer", "adam"]))
    assert built["crossloop.commands.train"] == built["crossloop.commands.parity"]
    assert built["crossloop.commands.train"].optimizer_spec(10) == \
        optim.SGD(optim.Step(0.05, 10, 0.5), momentum=0.9)
    for command in (train, parity):  # no flags: the same defaults
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        assert options.settings(parser.parse_args([])) == Experiment()


def test_optimizer_spec_follows_the_settings():
    steps = 10
    spec = Experiment(optimizer="sgd", momentum=0.9, nesterov=True, schedule="step",
                      gamma=0.5).optimizer_spec(steps)
    assert isinstance(spec, optim.SGD) and (spec.momentum, spec.nesterov) == (0.9, True)
    assert spec.lr == optim.Step(2e-3, steps, 0.5)  # step_size defaults to one epoch
    cosine = Experiment(epochs=3, warmup_steps=5).optimizer_spec(steps)
    assert cosine.lr == optim.Cosine(2e-3, 3 * steps, warmup_steps=5)
    adamw = Experiment(optimizer="adamw").optimizer_spec(steps)
    assert adamw.weight_decay == optim.AdamW().weight_decay  # None: the optimizer's default
    assert Experiment(optimizer="adamw", weight_decay=0.0).optimizer_spec(steps).weight_decay == 0


def test_the_newer_optimizers_take_their_settings_and_torchs_learning_rates():
    const = {"schedule": "constant"}
    assert Experiment(optimizer="rmsprop", momentum=0.5, centered=True, alpha=0.9, eps=1e-6,
                      weight_decay=1e-4, **const).optimizer_spec(10) == optim.RMSprop(
        0.01, alpha=0.9, eps=1e-6, weight_decay=1e-4, momentum=0.5, centered=True)
    assert Experiment(optimizer="adagrad", lr_decay=0.1, initial_accumulator_value=0.1,
                      **const).optimizer_spec(10) == optim.Adagrad(
        0.01, lr_decay=0.1, initial_accumulator_value=0.1)
    assert Experiment(optimizer="adadelta", rho=0.95, **const).optimizer_spec(10) == \
        optim.Adadelta(1.0, rho=0.95)
    assert Experiment(optimizer="adadelta", lr=0.5).lr == 0.5
    assert Experiment(optimizer="adam").lr == Experiment().lr == 2e-3  # as before
    assert Experiment(optimizer="adam", eps=1e-6).optimizer_spec(10).eps == 1e-6


def test_optimizer_flags_reach_the_spec():
    from crossloop.commands import train

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    exp = options.settings(parser.parse_args(
        ["--optimizer", "rmsprop", "--alpha", "0.9", "--centered", "--momentum", "0.9",
         "--eps", "1e-7", "--schedule", "constant"]))
    assert exp.optimizer_spec(5) == optim.RMSprop(0.01, alpha=0.9, eps=1e-7, momentum=0.9,
                                                  centered=True)
    exp = options.settings(parser.parse_args(
        ["--optimizer", "adagrad", "--lr-decay", "0.01", "--initial-accumulator-value", "0.1"]))
    assert (exp.lr_decay, exp.initial_accumulator_value) == (0.01, 0.1)
    with pytest.raises(ConfigError, match="rho applies only with optimizer adadelta"):
        options.settings(parser.parse_args(["--optimizer", "adagrad", "--rho", "0.5"]))


def test_output_dir_default_never_reuses_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = Experiment(backend="torch")
    first = output_dir(exp)
    assert first.parent == Path("runs") and first.name.endswith("-torch")
    first.mkdir(parents=True)
    assert output_dir(exp) != first
    assert output_dir(Experiment(name="baseline")) == Path("runs/baseline")
    assert output_dir(Experiment(name="baseline", out_dir="elsewhere")) == Path("elsewhere")


def test_load_data_uses_the_dtype_and_seed(tiny_mnist):
    train, test, _ = load_data(Experiment(data_dir=str(tiny_mnist), dtype="float64", batch_size=32))
    assert (len(train), train.batch_size, test.num_samples) == (4, 32, 64)
    x, _ = next(train.epoch(0))
    assert x.dtype == np.float64


# -- end to end ------------------------------------------------------------------

def test_crossloop_train_end_to_end(backend, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(tiny_mnist), "--model", "mlp", "--epochs", "2",
            "--batch-size", "32", "--backend", backend.name, "--device", "cpu",
            "--out-dir", str(out)]
    assert commands.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    epoch_lines = [line for line in lines if line.startswith(f"[{backend.name}] epoch")]
    assert len(epoch_lines) == 2  # not a terminal: one plain line per epoch

    config = json.loads((out / "config.json").read_text())
    assert config["backend"] == backend.name and config["model"] == "mlp"
    assert config["out_dir"] is None  # rerunning the file must not overwrite this run
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert list((out / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert (out / "curves.png").stat().st_size > 0

    # config.json reruns the same experiment: same batches, same weights, same numbers
    again = tmp_path / "again"
    assert commands.main(["train", "--config", str(out / "config.json"), "--out-dir", str(again),
                     "--no-plot", "--no-tensorboard"]) == 0
    rerun = json.loads((again / "history.json").read_text())
    keys = ("loss", "accuracy", "lr", "test_loss", "test_accuracy")
    assert [[h[k] for k in keys] for h in rerun] == [[h[k] for k in keys] for h in history]
    assert not (again / "curves.png").exists() and not (again / "tensorboard").exists()


def test_missing_data_is_reported_not_raised(tmp_path, capsys):
    code = commands.main(["train", "--data-dir", str(tmp_path / "nothing"), "--out-dir",
                          str(tmp_path / "run")])
    assert code == 2  # bad input: one line, no traceback
    err = capsys.readouterr().err
    assert str(tmp_path / "nothing") in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # a run that never started leaves no folder


def test_sigterm_then_resume_from_the_command_line(backend, tiny_mnist, tmp_path, monkeypatch, capsys):
    from crossloop import runner

    common = ["--data-dir", str(tiny_mnist), "--model", "mlp", "--epochs", "2", "--batch-size", "32",
              "--backend", backend.name, "--device", "cpu", "--no-plot", "--no-tensorboard"]
    assert commands.main(["train", *common, "--out-dir", str(tmp_path / "straight")]) == 0

    build = runner.build_callbacks
    monkeypatch.setattr(runner, "build_callbacks", lambda *a: [*build(*a), SignalAt(3)])
    out = tmp_path / "stopped"
    assert commands.main(["train", *common, "--out-dir", str(out)]) == 143
    assert f"crossloop train --resume {out}" in capsys.readouterr().err
    monkeypatch.undo()
    assert commands.main(["train", "--resume", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    straight = json.loads((tmp_path / "straight" / "history.json").read_text())
    resumed = json.loads((out / "history.json").read_text())
    keys = ("loss", "accuracy", "lr", "test_loss", "test_accuracy")
    assert [[h[k] for k in keys] for h in resumed] == [[h[k] for k in keys] for h in straight]


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert commands.main(["train", "--resume", str(tmp_path / "run")]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_settings_that_are_legal_but_likely_unmeant_are_warned_about(tiny_mnist, tmp_path, capsys):
    base = ["train", "--data-dir", str(tiny_mnist), "--model", "mlp", "--epochs", "1",
            "--backend", "torch", "--device", "cpu", "--quiet", "--no-plot", "--no-tensorboard"]
    odd = ["--optimizer", "sgd", "--momentum", "1.5", "--batch-size", "256", "--schedule",
           "cosine", "--warmup-steps", "50"]
    assert commands.main([*base, *odd, "--out-dir", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "Cosine warmup_steps 50 is not shorter than the schedule (total_steps 1)" in err
    assert "batch_size (--batch-size) 256 is larger than the 128 training samples" in err
    assert "SGD momentum 1.5 is 1 or more" in err
    assert err.count("crossloop: warning:") == 3  # once each, as lines
    assert commands.main([*base, "--out-dir", str(tmp_path / "plain")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_missing_extra_names_the_setting_and_the_flag_that_silence_it(monkeypatch, capsys):
    from crossloop import runner
    monkeypatch.setattr(runner, "find_spec", lambda name: None)
    names = [type(c).__name__ for c in runner.build_callbacks(Experiment(), Path("unused"), 1)]
    assert not {"CheckpointCallback", "TensorBoard", "PlotCurves"} & set(names)
    err = capsys.readouterr().err
    assert "pip install 'crossloop[plot]', or set plot=False (--no-plot) to silence" in err
    assert "(pip install 'crossloop[checkpoint]')" in err  # no setting turns checkpoints off
