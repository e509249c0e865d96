"""Checkpoints: atomic, pickle-free, exact resume on the same backend, resume on the other."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import crossloop
from conftest import striped_digits
from crossloop import checkpoint, nn, optim
from crossloop.callbacks import CheckpointCallback
from crossloop.checkpoint import CheckpointError
from crossloop.data import Batches
from crossloop.data.transforms import MNIST

OPT = optim.Adam(optim.Cosine(3e-3, 40, warmup_steps=5), clip_norm=1.0)


def tiny_data(n=80):
    return Batches(*striped_digits(n), 8, seed=1, transforms=MNIST)


def make(backend, **kw):
    return crossloop.Trainer(nn.lenet5(), OPT, backend=backend, seed=2, **kw)


def assert_params_equal(a, b, atol=0.0):
    assert list(a) == list(b)
    for key in a:
        if atol:
            np.testing.assert_allclose(a[key], b[key], rtol=0, atol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_resume_mid_epoch_is_bitwise_exact(backend, tmp_path):
    data = tiny_data()
    straight = make(backend)
    straight.fit(data, epochs=3)

    first = make(backend)
    first.fit(data, epochs=1)
    for x, y in list(data.epoch(1))[:4]:   # stop in the middle of epoch 2
        first.train_batch(x, y)
    path = checkpoint.save(tmp_path / "last.safetensors", first.state_dict())

    resumed = make(backend)
    checkpoint.restore(resumed, path)
    assert (resumed.step, resumed.epoch, resumed.batch) == (14, 1, 4)
    history = resumed.fit(data, epochs=3)
    assert_params_equal(resumed.params(), straight.params())
    assert [h["loss"] for h in history] == [h["loss"] for h in straight.history]


def test_a_loaded_state_is_copied_so_one_state_resumes_several_trainers(backend):
    data = tiny_data()
    first = make(backend)
    first.fit(data, epochs=1)
    state = first.state_dict()
    kept = {section: {k: v.copy() for k, v in state[section].items()}
            for section in ("model", "optimizer")}
    for _ in range(2):  # training the first must not change the arrays the second loads
        resumed = make(backend)
        resumed.load_state_dict(state)
        resumed.fit(data, epochs=2)
        for section, arrays in kept.items():
            assert_params_equal(state[section], arrays)
    assert_params_equal(resumed.params(), make_and_fit(backend, data, epochs=2).params())


def make_and_fit(backend, data, epochs):
    trainer = make(backend)
    trainer.fit(data, epochs=epochs)
    return trainer


def test_state_dict_mid_epoch_loads_into_a_fresh_trainer_bitwise(backend):
    """Trainer.state_dict() is the whole run state: no checkpoint file needed to resume."""
    data = tiny_data()
    straight = make(backend)
    straight.fit(data, epochs=2)

    first = make(backend, callbacks=[crossloop.EarlyStopping("loss", patience=5)])
    first.fit(data, epochs=1)
    for x, y in list(data.epoch(1))[:3]:
        first.train_batch(x, y)
    state = first.state_dict()
    assert (state["step"], state["epoch"], state["batch"]) == (13, 1, 3)
    assert state["callbacks"]["EarlyStopping"] == {"best": first.history[0]["loss"], "wait": 0}

    fresh = make(backend, callbacks=[crossloop.EarlyStopping("loss", patience=5)])
    fresh.load_state_dict(state)
    assert fresh.callbacks[0].best.value == first.history[0]["loss"]
    fresh.fit(data, epochs=2)
    assert_params_equal(fresh.params(), straight.params())
    assert fresh.history == [{**h, "seconds": f["seconds"], "samples_per_second": f["samples_per_second"]}
                             for h, f in zip(straight.history, fresh.history)]


def test_resume_on_the_other_backend_matches_within_float32_tolerance(tmp_path):
    if len(crossloop.available_backends()) < 2:
        pytest.skip("needs two backends")
    data = tiny_data()
    straight = make("torch", device="cpu")
    straight.fit(data, epochs=2)
    first = make("torch", device="cpu")
    first.fit(data, epochs=1)
    path = checkpoint.save(tmp_path / "torch.safetensors", first.state_dict())
    moved = make("tensorflow", device="cpu")
    checkpoint.restore(moved, path)
    assert moved.backend.name == "tensorflow" and moved.step == 10
    moved.fit(data, epochs=2)
    assert_params_equal(moved.params(), straight.params(), atol=1e-5)
    assert moved.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-4)


def test_callback_writes_last_and_best(backend, tmp_path):
    data = tiny_data()
    cb = CheckpointCallback(tmp_path, monitor="loss", mode="min", every_steps=3)
    trainer = make(backend, callbacks=[cb])
    trainer.fit(data, data, epochs=2)
    last = checkpoint.load(tmp_path / "last.safetensors")
    best = checkpoint.load(tmp_path / "best.safetensors")
    assert last["step"] == 20 and last["backend"] == backend.name
    assert best["epoch"] in (1, 2)
    assert set(last["optimizer"]) == {f"{k}.{s}" for k in nn.lenet5().param_shapes()
                                   for s in ("exp_avg", "exp_avg_sq")}
    assert cb.state_dict()["best"] == min(h["loss"] for h in trainer.history)


@pytest.mark.parametrize("callback", [
    lambda path: CheckpointCallback(path, monitor="test_acc"),
    lambda path: crossloop.callbacks.EarlyStopping(monitor="test_acc"),
])
def test_a_monitored_metric_the_logs_lack_fails_at_the_first_epoch_end(backend, tmp_path,
                                                                       callback):
    trainer = make(backend, callbacks=[callback(tmp_path)])
    with pytest.raises(KeyError, match=r"monitors 'test_acc', but the epoch logs have only "
                                       r"epoch, loss, accuracy, .*test_accuracy"):
        trainer.fit(tiny_data(), tiny_data(), epochs=2)
    assert trainer.epoch == 1
    cb = CheckpointCallback(tmp_path / "plain")  # monitor left out, no test data: no best
    make(backend, callbacks=[cb]).fit(tiny_data(), epochs=1)
    assert not (tmp_path / "plain" / "best.safetensors").exists()


def test_wrong_model_names_first_mismatched_tensor(backend, tmp_path):
    trainer = crossloop.Trainer(nn.mlp(hidden=128), OPT, backend=backend)
    path = checkpoint.save(tmp_path / "mlp128.safetensors", trainer.state_dict())
    other = crossloop.Trainer(nn.mlp(hidden=64), OPT, backend=backend)
    mismatch = r"'1.weight' has shape \(128, 784\), the model expects \(64, 784\)"
    with pytest.raises(CheckpointError, match=mismatch):
        checkpoint.restore(other, path)


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / "crossloop-pickle-ran"


@pytest.mark.parametrize("kind", ["pickle", "pickle-named-safetensors"])
def test_pickle_payload_is_refused_without_running(tmp_path, kind):
    MARKER.unlink(missing_ok=True)
    path = tmp_path / ("evil.pkl" if kind == "pickle" else "last.safetensors")
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="not a crossloop checkpoint.*never pickles"):
        checkpoint.load(path)
    assert not MARKER.exists()


def test_failed_write_leaves_previous_checkpoint(backend, tmp_path, monkeypatch):
    data = tiny_data()
    trainer = make(backend)
    trainer.fit(data, epochs=1)
    path = checkpoint.save(tmp_path / "last.safetensors", trainer.state_dict())
    before = checkpoint.load(path)["model"]
    trainer.fit(data, epochs=2)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, trainer.state_dict())
    monkeypatch.undo()
    after = checkpoint.load(path)
    assert after["step"] == 10
    assert_params_equal(after["model"], before)
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temp file left


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(backend, tmp_path):
    data = tiny_data()
    boom = optim.SGD(optim.Step(0.01, step_size=12, gamma=1e12))  # finite for 12 steps, then diverges
    cb = CheckpointCallback(tmp_path, monitor="loss", mode="min", every_steps=1)
    trainer = crossloop.Trainer(nn.mlp(), boom, backend=backend,
                                callbacks=[crossloop.NonFiniteGuard(), cb])
    with pytest.raises(crossloop.NonFiniteError, match=r"at step 1[3-9]"):
        trainer.fit(data, epochs=5)
    last = checkpoint.load(tmp_path / "last.safetensors")
    assert 12 <= last["step"] < trainer.step
    assert all(np.isfinite(v).all() for v in last["model"].values())


def test_early_stopping(backend):
    data = tiny_data()
    stopper = crossloop.EarlyStopping(monitor="loss", patience=2, min_delta=1e9)  # never "improves"
    trainer = crossloop.Trainer(nn.mlp(), optim.SGD(0.01), backend=backend, callbacks=[stopper])
    history = trainer.fit(data, epochs=10)
    assert len(history) == 3 and stopper.wait == 2


CHILD = textwrap.dedent("""
    import sys, time, numpy as np, crossloop
    from crossloop import checkpoint, nn, optim
    from crossloop.data import Batches
    from crossloop.data.transforms import MNIST
    backend, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 160)
    images = (rng.random((160, 28, 28)) * 60).astype(np.uint8)
    images[np.arange(160), labels, :] = 255
    data = Batches(images, labels, 8, seed=1, transforms=MNIST)

    class Slow(crossloop.Callback):
        def on_batch_end(self, trainer):
            print("step", trainer.step, flush=True)
            if mode == "interrupt":
                time.sleep(0.2)

    cb = crossloop.callbacks.CheckpointCallback(out)
    trainer = crossloop.Trainer(nn.lenet5(), optim.Adam(optim.Cosine(3e-3, 60)), backend=backend,
                                device="cpu", seed=2, callbacks=[cb, Slow()])
    if mode == "resume":
        checkpoint.restore(trainer, cb.last)
    try:
        trainer.fit(data, epochs=3)
    except crossloop.Interrupted as stop:
        print("interrupted", stop.signal_name, trainer.step, flush=True)
        sys.exit(143)
    np.savez(out + "/final.npz", **trainer.params())
""")


def test_sigterm_mid_epoch_then_resume_is_bitwise_exact(backend, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    def run(out, mode):
        return subprocess.run([sys.executable, str(script), backend.name, str(out), mode],
                                               capture_output=True, text=True, env=env, timeout=300)
    straight = run(tmp_path / "a", "straight")
    assert straight.returncode == 0, straight.stderr

    child = subprocess.Popen([sys.executable, str(script), backend.name, str(tmp_path / "b"), "interrupt"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in child.stdout:
        if line.startswith("step 25"):     # epoch 2 of 20 batches each: mid-epoch
            child.send_signal(signal.SIGTERM)
            break
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    stopped_at = int(out.strip().splitlines()[-1].split()[-1])
    assert 20 < stopped_at < 40, out
    assert checkpoint.load(tmp_path / "b" / "last.safetensors")["step"] == stopped_at

    resumed = run(tmp_path / "b", "resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "a" / "final.npz"), np.load(tmp_path / "b" / "final.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
