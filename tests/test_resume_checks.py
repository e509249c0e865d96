"""Resume checks what it loads: the state's schema, the settings that define the run,
and the data; allowed changes say what they do."""

from __future__ import annotations

import json

import numpy as np
import pytest

import crossloop
from conftest import striped_digits
from crossloop import commands, nn, optim
from crossloop.data import Batches
from crossloop.data.transforms import MNIST
from crossloop.experiment import Experiment
from crossloop.resume import ResumeError, plan_resume
from crossloop.state import StateError, check_state


def run_args(data, out, *extra):
    return ["train", "--data-dir", str(data), "--model", "mlp", "--batch-size", "32",
            "--backend", "torch", "--device", "cpu", "--no-plot", "--no-tensorboard", "--quiet",
            "--out-dir", str(out), *extra]


def small_state():
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend="torch",
                                device="cpu")
    trainer.fit(Batches(*striped_digits(32), 8, transforms=MNIST), epochs=1)
    return trainer.state_dict()


@pytest.mark.parametrize("change, words", [
    (lambda s: s.update(step=-5), "step must be >= 0"),
    (lambda s: (s.pop("data"), s.update(epoch=99)), "epoch is 99 but the history has 1"),
    (lambda s: s.update(history="nonsense"), "history must be a list"),
    (lambda s: s["history"][0].update(loss="low"), "non-numeric 'loss'"),
    (lambda s: s.update(dtype="float16"), "dtype 'float16' is not one of"),
    (lambda s: (s.pop("data"), s.update(batch=3)), "batch is 3 but"),
    (lambda s: s["metrics"].update(loss_sum=float("nan")), "metrics loss_sum must be a finite"),
    (lambda s: s.update(data={"batches_per_epoch": 4}, step=9), "step 9 does not follow"),
    (lambda s: s["model"].update({"1.weight": s["model"]["1.weight"].astype(np.int8)}),
     "has dtype int8"),
    (lambda s: s["optimizer"]["1.weight.exp_avg"].fill(np.inf), "NaN or infinite"),
    (lambda s: s.pop("optimizer_spec"), "no 'optimizer_spec'"),
    (lambda s: s["optimizer_spec"].update(type="Lamb"), "type 'Lamb' is not one of SGD, Adam"),
    (lambda s: s["optimizer"].update({"1.weight.sum": s["optimizer"]["1.weight.exp_avg"]}),
     r"'1.weight.sum' is not '<model tensor>.<slot>' with a Adam slot \(exp_avg, exp_avg_sq\)"),
    (lambda s: s["optimizer"].update({"9.weight.exp_avg": s["optimizer"]["1.weight.exp_avg"]}),
     "'9.weight.exp_avg' is not '<model tensor>.<slot>'"),
    (lambda s: s["optimizer"].update({"1.bias.exp_avg": s["optimizer"]["1.weight.exp_avg"]}),
     r"'1.bias.exp_avg' has shape \(8, 784\), its parameter \(8,\)"),
    (lambda s: s["optimizer"]["1.weight.exp_avg_sq"].flat.__setitem__(0, -1e-3),
     "'1.weight.exp_avg_sq' is a sum of squares but holds negative values"),
])
def test_the_schema_names_the_bad_field(change, words):
    state = small_state()
    check_state(state)
    change(state)
    with pytest.raises(StateError, match=words):
        check_state(state)


@pytest.mark.parametrize("spec, slots", [
    (optim.RMSprop(0.01, momentum=0.9, centered=True), ("square_avg", "momentum_buffer", "grad_avg")),
    (optim.Adagrad(0.1, initial_accumulator_value=0.1), ("sum",)),
    (optim.Adadelta(), ("square_avg", "acc_delta")),
], ids=["rmsprop", "adagrad", "adadelta"])
def test_the_newer_optimizers_states_pass_the_schema_and_a_negative_sum_does_not(spec, slots):
    trainer = crossloop.Trainer(nn.mlp(hidden=8), spec, backend="torch", device="cpu")
    trainer.fit(Batches(*striped_digits(32), 8, transforms=MNIST), epochs=1)
    state = trainer.state_dict()
    check_state(state)
    assert set(state["optimizer"]) == {f"{p}.{s}" for p in state["model"] for s in slots}
    state["optimizer"][f"1.weight.{slots[0]}"].flat[0] = -1.0
    with pytest.raises(StateError, match=f"'1.weight.{slots[0]}' is a sum of squares"):
        check_state(state)


def test_load_state_dict_refuses_another_optimizer_unless_reset():
    state = small_state()
    sgd = crossloop.Trainer(nn.mlp(hidden=8), optim.SGD(0.1, momentum=0.9), backend="torch",
                            device="cpu")
    with pytest.raises(StateError, match="optimizer is Adam.*reset_optimizer=True"):
        sgd.load_state_dict(state)
    sgd.load_state_dict(state, reset_optimizer=True)
    assert sgd.step == state["step"]
    assert not any(v.any() for v in sgd.backend.get_optimizer_state(sgd.optimizer, sgd.model).values())


def test_fit_refuses_data_with_another_number_of_batches():
    state = small_state()   # 4 batches an epoch
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend="torch", device="cpu")
    trainer.load_state_dict(state)
    with pytest.raises(StateError, match=r"trained at 4 batches per epoch \(it is at step \d+\), "
                                         "but the data gives 2"):
        trainer.fit(Batches(*striped_digits(32), 16, transforms=MNIST), epochs=2)


def test_plan_refuses_fixed_and_unallowed_changes_and_explains_allowed_ones():
    saved = Experiment(epochs=2).to_dict()
    state = {"step": 20, "epoch": 2}
    with pytest.raises(ResumeError, match="batch_size cannot change.*64, this run has 32"):
        plan_resume(saved, Experiment(epochs=3, batch_size=32), state, 10)
    with pytest.raises(ResumeError, match="would change lr from 0.002 to 0.01.*--allow-change lr"):
        plan_resume(saved, Experiment(epochs=3, lr=0.01, schedule="cosine"), state, 10, {"epochs"})
    with pytest.raises(ResumeError, match="finished its 2 epochs"):
        plan_resume(saved, Experiment(epochs=2), state, 10)
    plan = plan_resume(saved, Experiment(epochs=4), state, 10, {"epochs"})
    assert not plan.reset_optimizer
    assert plan.notes == ["learning rate at step 20: 0 -> 0.001 (epochs changed)"]
    plan = plan_resume(saved, Experiment(epochs=4, optimizer="sgd", momentum=0.9), state, 10,
                       {"epochs", "optimizer", "momentum"})
    assert plan.reset_optimizer and plan.notes[0].startswith("optimizer Adam -> SGD")
    constant = Experiment(epochs=2, schedule="constant").to_dict()
    assert plan_resume(constant, Experiment(epochs=5, schedule="constant"), state, 10).notes == []


def test_allowed_changes_resume_and_say_so(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert commands.main(run_args(tiny_mnist, out, "--epochs", "1")) == 0
    capsys.readouterr()
    assert commands.main(["train", "--resume", str(out), "--epochs", "2", "--optimizer", "sgd",
                          "--momentum", "0.9", "--allow-change", "optimizer", "--allow-change",
                          "momentum", "--allow-change", "epochs"]) == 0
    printed = capsys.readouterr().out
    assert "changed: optimizer Adam -> SGD: its state starts afresh at step 4" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["optimizer"], config["momentum"], config["epochs"]) == ("sgd", 0.9, 2)
    # the checkpoint now carries the new settings: resuming again needs no allowance
    assert commands.main(["train", "--resume", str(out), "--epochs", "3",
                          "--allow-change", "epochs"]) == 0


def test_guard_names_the_steps_after_a_resume(tmp_path):
    """The non-finite guard's last finite step travels in the state, so a run resumed
    mid-way reports the failing step, not a range from step 1."""
    data = Batches(*striped_digits(64), 8, seed=1, transforms=MNIST)
    boom = optim.SGD(optim.Step(0.01, step_size=10, gamma=1e12))
    guard = crossloop.NonFiniteGuard(check_every=1)
    first = crossloop.Trainer(nn.mlp(), boom, backend="torch", device="cpu", callbacks=[guard])
    first.fit(data, epochs=1)
    state = first.state_dict()
    assert state["callbacks"]["NonFiniteGuard"] == {"checked_step": 8}
    resumed = crossloop.Trainer(nn.mlp(), boom, backend="torch", device="cpu",
                                callbacks=[crossloop.NonFiniteGuard(check_every=1)])
    resumed.load_state_dict(state)
    with pytest.raises(crossloop.NonFiniteError, match=r"at step 1[1-9] \(epoch 2"):
        resumed.fit(data, epochs=3)
