"""A user's own torch nn.Module and Keras model trained by crossloop.Trainer: native
optimizers and losses, checkpoints under native names, exact resume, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import crossloop
from conftest import SignalAt, assert_params_equal_if_any, striped_digits
from crossloop import checkpoint, optim
from crossloop.callbacks import CheckpointCallback, NonFiniteError, NonFiniteGuard
from crossloop.data import Batches
from crossloop.data.transforms import MNIST


def tiny_data(n: int = 48) -> Batches:
    return Batches(*striped_digits(n), 8, seed=1, transforms=MNIST)


def native_model(backend_name: str, dtype: str = "float32"):
    """A small CNN with BatchNorm (buffers, an integer counter in torch), built afresh."""
    if backend_name == "torch":
        import torch
        torch.manual_seed(0)
        t = torch.nn
        return t.Sequential(t.Conv2d(1, 4, 5, stride=3), t.BatchNorm2d(4), t.ReLU(), t.Flatten(),
                            t.Linear(256, 10)).to(getattr(torch, dtype))
    import keras
    keras.backend.clear_session()   # auto layer names count per session: same names again
    keras.utils.set_random_seed(0)
    k = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1), dtype=dtype),
                             k.Conv2D(4, 5, strides=3, dtype=dtype),
                             k.BatchNormalization(dtype=dtype), k.ReLU(dtype=dtype),
                             k.Flatten(dtype=dtype), k.Dense(10, dtype=dtype)])


def native_parts(backend_name: str, lr: float = 1e-2):
    """(model, native Adam, native cross-entropy loss) of the backend's framework."""
    model = native_model(backend_name)
    if backend_name == "torch":
        import torch
        return model, torch.optim.Adam(model.parameters(), lr), torch.nn.CrossEntropyLoss()
    import keras
    return (model, keras.optimizers.Adam(lr),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def test_native_model_resumes_bitwise(backend, tmp_path):
    data = tiny_data()
    model, opt, loss = native_parts(backend.name)
    straight = crossloop.Trainer(model, opt, loss=loss)
    assert straight.backend.name == backend.name   # the backend follows the model
    straight.fit(data, epochs=2)

    model, opt, loss = native_parts(backend.name)
    first = crossloop.Trainer(model, opt, loss=loss)
    first.fit(data, epochs=1)
    for x, y in list(data.epoch(1))[:2]:
        first.train_batch(x, y)
    path = checkpoint.save(tmp_path / "last.safetensors", first.state_dict())
    assert path is not None

    model, opt, loss = native_parts(backend.name)
    resumed = crossloop.Trainer(model, opt, loss=loss)
    state = checkpoint.restore(resumed, path)
    assert set(state["model"]) == set(straight.params())   # the model's own names
    assert state["optimizer"] and state["spec"]["native"] == backend.name
    resumed.fit(data, epochs=2)
    assert_params_equal_if_any(resumed.params(), straight.params())
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_native_model_with_crossloop_optimizer_and_interrupt(backend, tmp_path):
    data = tiny_data()
    callbacks = [CheckpointCallback(tmp_path), SignalAt(3)]
    model = native_model(backend.name)
    trainer = crossloop.Trainer(model, optim.SGD(0.05, momentum=0.9), callbacks=callbacks)
    with pytest.raises(crossloop.Interrupted):
        trainer.fit(data, epochs=1)
    saved = trainer.params()
    resumed = crossloop.Trainer(native_model(backend.name), optim.SGD(0.05, momentum=0.9))
    checkpoint.restore(resumed, tmp_path / "last.safetensors")
    assert resumed.step == 3
    assert_params_equal_if_any(resumed.params(), saved)
    logs = resumed.fit(data, epochs=1)[-1]
    assert np.isfinite(logs["loss"]) and resumed.step == len(data)


def test_non_finite_guard_stops_a_native_model(backend):
    model, opt, loss = native_parts(backend.name, lr=1e30)
    trainer = crossloop.Trainer(model, opt, loss=loss, callbacks=[NonFiniteGuard()])
    with pytest.raises(NonFiniteError):
        trainer.fit(tiny_data(), epochs=3)


def test_model_and_backend_must_match(backend):
    other = "tensorflow" if backend.name == "torch" else "torch"
    if other not in crossloop.available_backends():
        pytest.skip(f"{other} is not installed")
    with pytest.raises(crossloop.BackendError, match=f"backend is '{other}'"):
        crossloop.Trainer(native_model(backend.name), optim.SGD(0.1), backend=other)


def test_dtype_follows_the_model(backend):
    trainer = crossloop.Trainer(native_model(backend.name, "float64"), optim.SGD(0.1))
    assert trainer.dtype == "float64"
    with pytest.raises(ValueError, match="model's parameters are float64"):
        crossloop.Trainer(native_model(backend.name, "float64"), optim.SGD(0.1), dtype="float32")


def test_native_model_with_logger_early_stopping_and_tensorboard(backend, tmp_path):
    pytest.importorskip("tensorboard")
    import io

    from crossloop.callbacks import EarlyStopping, EpochLogger
    from crossloop.callbacks.tensorboard import TensorBoard
    model, opt, loss = native_parts(backend.name)
    stream = io.StringIO()
    callbacks = [EpochLogger(stream), TensorBoard(tmp_path / "tb"),
                 EarlyStopping(monitor="loss", patience=1, mode="max")]  # loss falls: stops
    history = crossloop.Trainer(model, opt, loss=loss, callbacks=callbacks).fit(
        tiny_data(), tiny_data(16), epochs=4)
    assert len(history) == 2 and "test_accuracy" in history[-1]
    assert stream.getvalue().count("\n") >= 2
    assert list((tmp_path / "tb").rglob("events.*"))


def test_native_state_keeps_its_dtypes_and_refuses_others(backend):
    from crossloop.state import StateError, check_state
    model, opt, loss = native_parts(backend.name)
    trainer = crossloop.Trainer(model, opt, loss=loss)
    trainer.fit(tiny_data(), epochs=1)
    state = trainer.state_dict()
    check_state(state)   # torch's num_batches_tracked, Keras's iteration: integers, kept
    tensors = [v for section in ("model", "optimizer") for v in state[section].values()]
    assert any(v.dtype.kind in "iu" for v in tensors)
    with pytest.raises(StateError, match="not a number"):
        check_state({**state, "optimizer": {**state["optimizer"], "x": np.array([True])}})
    as_spec = {**state, "spec": {k: v for k, v in state["spec"].items() if k != "native"}}
    with pytest.raises(StateError, match="dtype"):   # a spec run's tensors: its dtype only
        check_state(as_spec)
