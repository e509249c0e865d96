"""The Trainer: events, history, evaluation, resumable position, and a real MNIST run."""

import numpy as np
import pytest

import crossloop
from conftest import striped_digits as tiny_data
from crossloop import nn, optim
from crossloop.data import Batches
from crossloop.data.transforms import MNIST


class Recorder(crossloop.Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer): self.events.append("fit_start")
    def on_epoch_start(self, trainer): self.events.append("epoch_start")
    def on_batch_end(self, trainer): self.events.append("batch")
    def on_epoch_end(self, trainer, logs): self.events.append(("epoch_end", logs["epoch"]))
    def on_fit_end(self, trainer): self.events.append("fit_end")


def test_fit_fires_events_and_returns_history(backend):
    images, labels = tiny_data()
    train = Batches(images, labels, 16, seed=0, transforms=MNIST)
    test = Batches(images, labels, 32, shuffle=False, transforms=MNIST)
    rec = Recorder()
    trainer = crossloop.Trainer(nn.mlp(), optim.Adam(1e-2), backend=backend, callbacks=[rec])
    history = trainer.fit(train, test, epochs=2)
    assert rec.events == ["fit_start", "epoch_start", *["batch"] * 4, ("epoch_end", 1),
                          "epoch_start", *["batch"] * 4, ("epoch_end", 2), "fit_end"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) >= {"loss", "accuracy", "test_loss", "test_accuracy", "seconds", "lr"}
    assert history[1]["loss"] < history[0]["loss"]
    assert trainer.step == 8 and trainer.epoch == 2


def test_schedule_is_written_before_each_step(backend):
    images, labels = tiny_data(32)
    seen = []

    class LR(crossloop.Callback):
        def on_batch_end(self, trainer):
            seen.append(trainer.lr)

    sched = optim.Step(0.1, step_size=2, gamma=0.5)
    trainer = crossloop.Trainer(nn.mlp(), optim.SGD(sched), backend=backend, callbacks=[LR()])
    trainer.fit(Batches(images, labels, 8, transforms=MNIST), epochs=1)
    assert seen == [0.1, 0.1, 0.05, 0.05]


def test_stop_ends_fit(backend):
    images, labels = tiny_data(32)

    class StopAfterTwo(crossloop.Callback):
        def on_batch_end(self, trainer):
            if trainer.step >= 2:
                trainer.stop("two steps are enough")

    trainer = crossloop.Trainer(nn.mlp(), optim.SGD(0.1), backend=backend, callbacks=[StopAfterTwo()])
    trainer.fit(Batches(images, labels, 8, transforms=MNIST), epochs=3)
    assert (trainer.step, trainer.epoch, trainer.batch) == (2, 0, 2)
    assert trainer.stop_reason == "two steps are enough"


def test_fit_function_runs_on_named_backend(backend):
    images, labels = tiny_data(32)
    history = crossloop.fit(nn.mlp(), optim.SGD(0.1), Batches(images, labels, 8, transforms=MNIST),
                            epochs=1, backend=backend.name, device="cpu")
    assert len(history) == 1 and np.isfinite(history[0]["loss"])


SMALL = nn.Sequential([nn.Linear(4, 3)], input_shape=(4,), name="small")


@pytest.mark.parametrize("spec, options, error, words", [
    (None, {}, TypeError, r"spec must be a crossloop.nn.Sequential or a native model .*got None"),
    ("mlp", {}, TypeError, r"for a preset name use crossloop.nn.preset\('mlp'\)"),
    (SMALL, {"seed": None}, TypeError, "seed must be an int >= 0, got None"),
    (SMALL, {"seed": 2**32}, ValueError, r"seed must be <= 4294967295"),
    (SMALL, {"seed": 1.5}, TypeError, "seed must be an int"),
    (SMALL, {"params": {"0.weight": np.full((3, 4), np.nan), "0.bias": np.zeros(3)}},
     ValueError, "tensor '0.weight' has non-finite values"),
])
def test_bad_trainer_arguments_fail_at_the_call_alike_on_every_backend(backend, spec, options,
                                                                        error, words):
    with pytest.raises(error, match=words):
        crossloop.Trainer(spec, optim.SGD(0.1), backend=backend, **options)


@pytest.mark.parametrize("epochs, error", [(2.5, TypeError), (True, TypeError), (0, ValueError)])
def test_epochs_must_be_a_whole_number(backend, epochs, error):
    trainer = crossloop.Trainer(SMALL, optim.SGD(0.1), backend=backend)
    with pytest.raises(error, match="epochs must be"):
        trainer.fit(Batches(np.ones((8, 4)), np.zeros(8, int), 4), epochs=epochs)
    assert trainer.step == 0


def test_fit_to_epochs_already_done_warns_how_to_train_more(backend):
    trainer = crossloop.Trainer(SMALL, optim.SGD(0.1), backend=backend)
    data = Batches(np.ones((8, 4)), np.zeros(8, int), 4)
    trainer.fit(data, epochs=2)
    with pytest.warns(UserWarning, match=r"has done 2 epochs.* pass epochs=4 for 2 more"):
        trainer.fit(data, epochs=2)
    assert trainer.step == 4


def test_predict_gives_the_logits_that_evaluate_scores(backend):
    images, labels = tiny_data(40)
    whole = Batches(images, labels, 40, shuffle=False, transforms=MNIST)
    x, _ = whole.batch(np.arange(40), 0)  # the inputs as batches give them
    trainer = crossloop.Trainer(nn.mlp(), optim.Adam(1e-2), backend=backend)
    trainer.fit(Batches(images, labels, 8, transforms=MNIST), epochs=2)
    logits = trainer.predict(x.astype(np.float64), batch_size=16)  # floats: cast to the run's
    assert logits.shape == (40, 10) and logits.dtype == np.float32
    accuracy = trainer.evaluate(whole)
    assert np.mean(logits.argmax(1) == labels) == accuracy["accuracy"]
    np.testing.assert_allclose(trainer.predict(x), logits, rtol=0, atol=1e-5)  # one batch
    with pytest.raises(ValueError, match=r"takes inputs of shape \(1, 28, 28\), the data gives"):
        trainer.predict(x[:, :, :20])
    with pytest.raises(ValueError, match="one or more samples"):
        trainer.predict(x[:0])


def test_short_real_mnist_run(backend, mnist):
    """A few hundred steps on real MNIST: the backend really learns."""
    train = Batches(mnist.train_inputs[:6400], mnist.train_targets[:6400], 64, seed=0,
                    transforms=MNIST)
    test = Batches.from_dataset(mnist, "test", 1000)
    trainer = crossloop.Trainer(nn.lenet5(), optim.Adam(2e-3), backend=backend)
    history = trainer.fit(train, test, epochs=1)
    assert history[-1]["test_accuracy"] > 0.9, history
