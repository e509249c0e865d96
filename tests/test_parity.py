"""The parity harness: two backends, same start, same batches, compared step by step."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from crossloop import commands, nn, optim
from crossloop.experiment import ConfigError
from crossloop.parity import ParityReport, StepRecord, Tolerance, forward_diff, run_parity
from crossloop.testing import assert_parity, synthetic_batches

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

# A small conv net with every layer kind LeNet-5 uses, on 12x12 inputs: fast in eager mode.
SPEC = nn.Sequential((nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 16),
                      nn.ReLU(), nn.Linear(16, 10)), input_shape=(1, 12, 12), name="small")
STEPS = 20

# The four optimizer set-ups of the LeNet-5 parity acceptance, scaled to STEPS.
CASES = {
    "sgd": optim.SGD(0.05),
    "sgd-nesterov-cosine": optim.SGD(optim.Cosine(0.05, STEPS, warmup_steps=5), momentum=0.9,
                                     nesterov=True),
    "adam": optim.Adam(1e-2),
    "adamw-clip": optim.AdamW(1e-2, weight_decay=0.01, clip_norm=1.0),
}


def batches(n: int = STEPS) -> list[tuple[np.ndarray, np.ndarray]]:
    return synthetic_batches(n, SPEC.input_shape)


@pytest.mark.parametrize("case", CASES)
def test_float64_backends_agree_at_every_step(case):
    opt = CASES[case]
    report = assert_parity(SPEC, opt, batches(), steps=STEPS, dtype="float64")
    assert [r.step for r in report.steps] == list(range(STEPS))
    assert [r.lr for r in report.steps] == [opt.lr(s) for s in range(STEPS)]
    assert report.max_diff("weights") <= 1e-10 and report.max_diff("loss") <= 1e-10
    # the run really trained: losses fell and every tensor got a gradient
    assert report.steps[-1].loss[0] < report.steps[0].loss[0]
    assert set(report.steps[0].grad_diff) == set(SPEC.param_shapes())
    assert all(r.grad_norm[0] > 0 for r in report.steps)


@pytest.mark.parametrize("case", ["sgd-nesterov-cosine", "adamw-clip"])
def test_float32_loss_and_logits_agree(case):
    report = assert_parity(SPEC, CASES[case], batches(), steps=STEPS, dtype="float32")
    assert report.max_diff("loss_rel") <= 1e-4
    assert report.max_diff("logits") <= 1e-5
    assert report.steps[-1].loss[0] < report.steps[0].loss[0]


def test_clipping_is_active_in_the_clip_case():
    """The AdamW case clips: its gradient norms exceed clip_norm, so the rule is exercised."""
    report = run_parity(SPEC, optim.AdamW(1e-2, clip_norm=0.05), batches(5), steps=5)
    assert report.passed
    assert min(r.grad_norm[0] for r in report.steps) > 0.05


def _use_keras_adam(monkeypatch):
    """Break one semantic: the TensorFlow backend builds Keras's own Adam (eps 1e-7 added
    to the uncorrected sqrt(v)) instead of crossloop's torch-formula Adam."""
    import keras

    from crossloop_tensorflow import optimizers

    def keras_adam(spec, params):
        native = keras.optimizers.Adam(learning_rate=spec.lr(0), beta_1=spec.betas[0],
                                       beta_2=spec.betas[1])
        native.build(params)
        return native

    def set_lr(native, lr):
        native.learning_rate = lr

    monkeypatch.setattr(optimizers, "build", keras_adam)
    monkeypatch.setattr(optimizers, "set_learning_rate", set_lr)


def test_a_broken_semantic_fails_and_names_the_step_and_tensor(monkeypatch):
    _use_keras_adam(monkeypatch)
    report = run_parity(SPEC, optim.Adam(1e-2), batches(5), steps=5)
    assert not report.passed
    failure = report.failure
    # same start, so the step-0 forward pass and gradients agree; the update does not
    assert (failure.step, failure.quantity) == (0, "weights")
    assert failure.tensor == "0.weight" and failure.value > 1e-10
    # (the forward passes agree within the float64 promise, not bit for bit: kernels differ)
    assert report.steps[0].loss_diff <= Tolerance.default("float64").loss
    with pytest.raises(AssertionError, match=r"step 0: weight '0.weight' differs by .* > tolerance 1e-10"):
        assert_parity(SPEC, optim.Adam(1e-2), batches(5), steps=5)


def _torch_with_a_bad_first_step():
    """A torch backend whose first update uses twice the gradients: a difference in
    the weights and in the momentum buffers at step 0, and none after it."""
    from crossloop_torch.backend import TorchBackend

    class BadFirstStep(TorchBackend):
        name = "torch-bad-first-step"
        steps = 0

        def apply_gradients(self, optimizer, model, grads):
            scale, self.steps = (2.0 if self.steps == 0 else 1.0), self.steps + 1
            return super().apply_gradients(optimizer, model, [g * scale for g in grads])

    return BadFirstStep(device="cpu")


def test_lockstep_restarts_the_second_backend_from_the_first_after_every_step():
    """Lockstep: every step starts both backends from one state, weights and momentum
    buffers alike, so a difference made at step 0 is gone from step 1 on (bit for bit:
    both sides are torch); free-running carries it on."""
    opt, steps = optim.SGD(0.01, momentum=0.9), 6
    free, lock = (run_parity(SPEC, opt, batches(steps), steps=steps, lockstep=mode,
                             backends=("torch", _torch_with_a_bad_first_step()))
                  for mode in (False, True))
    assert lock.steps[0].weight_diff == free.steps[0].weight_diff
    assert (lock.failure.step, lock.failure.quantity) == (0, "weights")
    assert all(r.loss_diff == 0.0 and max(r.weight_diff.values()) == 0.0 for r in lock.steps[1:])
    assert free.steps[-1].loss_diff > 0.0 and max(free.steps[-1].weight_diff.values()) > 1e-10
    assert lock.lockstep and lock.to_dict()["lockstep"] and "6 steps in lockstep" in lock.summary()
    assert not free.lockstep and "lockstep" not in free.summary()


def test_float32_lockstep_keeps_a_batchnorm_resnet_within_the_float32_promise():
    """A small ResNet (BatchNorm, residual blocks) in float32 lockstep: every step's
    loss within 1e-4 relative and the same-weights logits within 1e-5."""
    spec = nn.resnet20(input_shape=(1, 12, 12), blocks=1, widths=(4, 8, 8))
    report = run_parity(spec, optim.SGD(0.05, momentum=0.9, weight_decay=5e-4), batches(10),
                        steps=10, dtype="float32", lockstep=True)
    assert report.passed, report.summary()
    assert any(name.endswith("running_var") for name in report.steps[0].weight_diff)


def _record(step, loss=(1.0, 1.0), grads=0.0, weights=0.0) -> StepRecord:
    return StepRecord(step, 0.1, list(loss), [1.0, 1.0], 0.0, {"0.weight": 0.0, "0.bias": grads},
                      {"0.weight": weights, "0.bias": 0.0})


STRICT = Tolerance(loss=1e-10, grads=1e-10, weights=1e-10, logits=1e-10)


def _report(steps, tolerance=STRICT, logits=None) -> ParityReport:
    return ParityReport(("a", "b"), "float64", tolerance, {}, steps,
                        logits or {"initial": 0.0, "final": 0.0}, 0.0)


def test_the_first_exceedance_is_reported_in_step_then_phase_order():
    report = _report([_record(0), _record(1, weights=1e-3, grads=1e-9), _record(2, loss=(1, 2))])
    assert str(report.failure) == "step 1: gradient of '0.bias' differs by 1e-09 > tolerance 1e-10"
    assert _report([_record(0), _record(1, loss=(1.0, 1.5), grads=1.0)]).failure.quantity == "loss"
    assert _report([_record(0)], logits={"initial": 0.0, "final": 1e-6}).failure.tensor == \
        "logits (same weights)"
    assert _report([_record(0), _record(1)]).passed


def test_the_logits_tolerance_grows_with_the_logits_size():
    """float32 rounds a logit of 20 twenty times coarser than one of 1: the same-weights
    bound is 1e-5 * max(1, max |logits|), as compare_models scales its own."""
    f32 = Tolerance.default("float32")
    diff = {"initial": 0.0, "final": 1.5e-5}
    large = ParityReport(("a", "b"), "float32", f32, {}, [_record(0)], diff, 0.0,
                         logits_scale={"initial": 1.0, "final": 20.0})
    assert large.passed
    small = ParityReport(("a", "b"), "float32", f32, {}, [_record(0)], diff, 0.0,
                         logits_scale={"initial": 1.0, "final": 0.5})
    assert str(small.failure) == ("step 0: logits (same weights on both) differs by 1.5e-05 "
                                  "> tolerance 1e-05")


def test_a_run_records_the_logits_size_it_scales_by():
    from crossloop import get_backend
    torch, data = get_backend("torch", device="cpu"), batches(2)
    params = nn.init_params(SPEC, 0, dtype="float64")
    report = run_parity(SPEC, CASES["sgd"], data, steps=2, params=params)
    logits = torch.to_numpy(torch.forward(torch.build_model(SPEC, params, "float64"),
                                          torch.to_device(data[0][0]), training=False))
    assert report.logits_scale["initial"] == float(np.abs(logits).max()) > 0
    assert json.loads(report.to_json())["logits_scale"] == report.logits_scale


def test_nan_never_passes_and_none_leaves_a_quantity_unchecked():
    nan = _report([_record(0, weights=math.nan)])
    assert not nan.passed and nan.failure.tensor == "0.weight"
    assert math.isnan(nan.max_diff("weights"))
    assert _report([_record(0, weights=1.0)], Tolerance(loss=1e-10)).passed
    relative = Tolerance(loss_rel=1e-4)
    assert _report([_record(0, loss=(100.0, 100.005))], relative).passed
    assert not _report([_record(0, loss=(1.0, 1.005))], relative).passed


def test_report_json_table_and_plot(tmp_path):
    report = run_parity(SPEC, CASES["adam"], batches(4), steps=4)
    paths = report.save(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["passed"] is True and data["failure"] is None
    assert data["backends"] == ["torch", "tensorflow"] and data["dtype"] == "float64"
    assert data["config"]["optimizer"]["type"] == "Adam"
    assert len(data["steps"]) == 4 and set(data["steps"][0]["weight_diff"]) == set(SPEC.param_shapes())
    assert (tmp_path / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths == [tmp_path / "report.json", tmp_path / "parity.png"]
    table = report.table()
    assert len(table.splitlines()) == 2 + 4 and "loss[torch]" in table
    assert report.summary().startswith("PASS")


def test_forward_diff_is_small_for_the_same_weights_and_large_for_different_ones():
    from crossloop import get_backend
    pair = [get_backend(n, device="cpu") for n in ("torch", "tensorflow")]
    x = batches(1)[0][0]
    params = nn.init_params(SPEC, 0, dtype="float64")
    assert forward_diff(SPEC, params, x, pair) <= 1e-12
    other = {k: v * (1.5 if k == "0.weight" else 1.0) for k, v in params.items()}
    logits = [pair[0].to_numpy(pair[0].forward(pair[0].build_model(SPEC, p, "float64"),
                                               pair[0].to_device(x))) for p in (params, other)]
    assert np.abs(logits[0] - logits[1]).max() > 1e-3


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="Dropout.*use p=0"):
        run_parity(nn.Sequential((nn.Flatten(), nn.Dropout(0.5), nn.Linear(144, 10)),
                                 input_shape=(1, 12, 12)), optim.SGD(0.1), batches(2), steps=2)
    with pytest.raises(ValueError, match="ran out after 2 batches; the parity run needs 3"):
        run_parity(SPEC, optim.SGD(0.1), batches(2), steps=3)
    with pytest.raises(ValueError, match="exactly two backends"):
        run_parity(SPEC, optim.SGD(0.1), batches(2), steps=2, backends=["torch"])


def test_data_that_does_not_fit_the_model_is_refused_as_fit_refuses_it():
    x, y = batches(1)[0]
    with pytest.raises(ValueError, match=r"takes inputs of shape \(1, 12, 12\), the data "
                                         r"gives \(1, 12, 5\)"):
        run_parity(SPEC, optim.SGD(0.1), [(x[..., :5], y)], steps=1)
    with pytest.raises(ValueError, match=r"class ids in \[0, 10\) .*; got 12"):
        run_parity(SPEC, optim.SGD(0.1), [(x, np.full_like(y, 12))], steps=1)
    from crossloop.data import Batches
    with pytest.raises(ValueError, match=r"class ids in \[0, 10\) .*; got -1"):
        run_parity(SPEC, optim.SGD(0.1), Batches(x, y - 100, 2, dtype="float64"), steps=1)


def test_a_batches_object_feeds_epochs_back_to_back():
    from crossloop.data import Batches
    from crossloop.data.transforms import MNIST
    rng = np.random.default_rng(0)
    data = Batches(rng.integers(0, 256, (40, 12, 12), dtype=np.uint8), rng.integers(0, 10, 40),
                   16, dtype="float64", transforms=MNIST)   # 3 batches per epoch
    report = run_parity(SPEC, optim.SGD(0.1), data, steps=5)
    assert report.passed and len(report.steps) == 5


def _settings(*argv):
    import argparse

    from crossloop.commands import options, parity
    parser = argparse.ArgumentParser()
    parity.add_arguments(parser)
    return options.settings(parser.parse_args(list(argv)))


def test_command_line_options_build_the_optimizer():
    opt = _settings("--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--nesterov",
                    "--schedule", "cosine", "--warmup-steps", "5", "--epochs", "2",
                    "--clip-norm", "1").optimizer_spec(steps_per_epoch=20)
    assert opt == optim.SGD(optim.Cosine(0.1, 40, warmup_steps=5), momentum=0.9, nesterov=True,
                            clip_norm=1.0)
    assert _settings("--optimizer", "adamw", "--schedule", "constant").optimizer_spec(20) == \
        optim.AdamW(2e-3)
    with pytest.raises(ConfigError,
                       match="momentum applies only with optimizer sgd or rmsprop, not optimizer 'adam'"):
        _settings("--optimizer", "adam", "--momentum", "0.9")


def test_cli_on_mnist_writes_table_json_and_png(mnist, tmp_path, capsys):
    code = commands.main(["parity", "--steps", "3", "--optimizer", "adamw", "--clip-norm", "1",
                     "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "loss[torch]" in out
    assert json.loads((tmp_path / "report.json").read_text())["config"]["experiment"]["batch_size"] == 64
    assert (tmp_path / "parity.png").stat().st_size > 10_000


def test_cli_lockstep_says_so_in_the_summary_and_the_report(mnist, tmp_path, capsys):
    code = commands.main(["parity", "--steps", "2", "--lockstep", "--dtype", "float32",
                          "--no-plot", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 steps in lockstep, float32" in out and "float32, 2 steps in lockstep: max" in out
    assert json.loads((tmp_path / "report.json").read_text())["lockstep"] is True
    with pytest.raises(SystemExit) as exit_:  # refused before the run, not after it
        commands.main(["parity", "--steps", "2", "--out", str(tmp_path / "report.json")])
    assert exit_.value.code == 2 and "report.json is a file, not a folder" in capsys.readouterr().err


def test_cli_a_float32_loss_drift_points_to_lockstep_and_float64(mnist, tmp_path, capsys):
    args = ["parity", "--steps", "2", "--dtype", "float32", "--no-plot", "--out", str(tmp_path)]
    assert commands.main([*args, "--tol-loss-rel", "1e-12"]) == 1  # rounding is over 1e-12
    out = capsys.readouterr().out
    assert "FAIL  step" in out and ": loss differs by" in out and "--lockstep checks each step" in out
    assert commands.main([*args, "--tol-loss-rel", "1e-12", "--lockstep"]) == 1
    assert "--lockstep checks" not in capsys.readouterr().out


def test_cli_no_dropout_compares_a_preset_that_has_dropout(mnist, tmp_path, capsys):
    args = ["parity", "--model", "keras-mnist-convnet", "--steps", "2", "--no-plot", "--out",
            str(tmp_path)]
    assert commands.main(args) == 2
    assert "crossloop parity --no-dropout" in capsys.readouterr().err
    assert commands.main([*args, "--no-dropout"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_cli_exits_nonzero_and_names_step_and_tensor(mnist, tmp_path, capsys, monkeypatch):
    _use_keras_adam(monkeypatch)
    code = commands.main(["parity", "--steps", "2", "--optimizer", "adam", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  step 0: weight '0.weight' differs by" in out
    assert json.loads((tmp_path / "report.json").read_text())["failure"]["tensor"] == "0.weight"


def test_lenet5_on_mnist_agrees_in_float64(mnist):
    """The acceptance set-up (LeNet-5, MNIST batches of 64), shortened to 25 steps."""
    from crossloop.data import Batches
    train = Batches.from_dataset(mnist, "train", 64, dtype="float64")
    opt = optim.SGD(optim.Cosine(0.01, 25, warmup_steps=5), momentum=0.9, nesterov=True)
    report = assert_parity(nn.lenet5(), opt, train, steps=25)
    assert report.max_diff("weights") <= 1e-10 and report.max_diff("loss") <= 1e-10
