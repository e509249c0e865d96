"""Framework-native pipelines in: a torch DataLoader or Dataset and a tf.data.Dataset
train on either backend, converted batch by batch at the boundary."""

from __future__ import annotations

import numpy as np
import pytest

import crossloop
from crossloop import nn, optim
from crossloop.data import Batches, as_batch_source
from crossloop.data.native import NativeBatches, SampleBatches
from crossloop.data.transforms import MNIST

N_TRAIN = 6400  # 100 steps of 64


def normalised(mnist, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` samples of a split as the built-in pipeline makes them (NCHW float32)."""
    x, y = next(Batches(getattr(mnist, f"{split}_inputs")[:n], getattr(mnist, f"{split}_targets")[:n],
                        n, shuffle=False, transforms=MNIST).epoch(0))
    return x, y


def train_accuracy(backend, train, test) -> float:
    trainer = crossloop.Trainer(nn.mlp(64), optim.Adam(2e-3), backend=backend, seed=0)
    return trainer.fit(train, test, epochs=1)[-1]["test_accuracy"]


@pytest.fixture(scope="module")
def reference(mnist):
    """The built-in pipeline's test accuracy for the same model and steps, per backend."""
    return {}


def builtin_accuracy(backend, mnist, reference) -> float:
    if backend.name not in reference:
        train = Batches(mnist.train_inputs[:N_TRAIN], mnist.train_targets[:N_TRAIN], 64, seed=0,
                        transforms=MNIST)
        reference[backend.name] = train_accuracy(backend, train,
                                                 Batches.from_dataset(mnist, "test", 1000))
    return reference[backend.name]


def test_a_torch_dataloader_trains_like_the_builtin_pipeline(backend, mnist, reference):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    x, y = normalised(mnist, "train", N_TRAIN)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=64,
                        shuffle=True, generator=torch.Generator().manual_seed(0))
    test = DataLoader(TensorDataset(*map(torch.from_numpy, normalised(mnist, "test", 10_000))),
                      batch_size=1000)
    accuracy = train_accuracy(backend, loader, test)
    assert accuracy > 0.85 and abs(accuracy - builtin_accuracy(backend, mnist, reference)) < 0.03


def test_a_tf_data_dataset_trains_like_the_builtin_pipeline(backend, mnist, reference):
    tf = pytest.importorskip("tensorflow")
    x, y = normalised(mnist, "train", N_TRAIN)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # tf.data's own layout
    train = tf.data.Dataset.from_tensor_slices((nhwc, y)).shuffle(N_TRAIN, seed=0).batch(64)
    tx, ty = normalised(mnist, "test", 10_000)
    test = tf.data.Dataset.from_tensor_slices((tx.transpose(0, 2, 3, 1), ty)).batch(1000)
    accuracy = train_accuracy(backend, train, test)
    assert accuracy > 0.85 and abs(accuracy - builtin_accuracy(backend, mnist, reference)) < 0.03


# -- the boundary ---------------------------------------------------------------------

def test_native_batches_are_canonical():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)  # NHWC
    y = np.array([1, 2], np.int32)
    source = NativeBatches([(x, y)] * 3, dtype="float64", channels_last=True)
    assert len(source) == 3
    batches = list(source.epoch(0, start=1))
    assert len(batches) == 2
    xb, yb = batches[0]
    assert xb.shape == (2, 3, 6, 5) and xb.dtype == np.float64 and yb.dtype == np.int64
    np.testing.assert_array_equal(xb, x.transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=r"batch 0 of list is a dict; crossloop needs \(inputs"):
        next(NativeBatches([{"x": x}]).epoch(0))


def test_a_map_style_dataset_is_batched_in_crossloop_order():
    class Squares:  # len and [i], like a torch Dataset
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return np.full(3, i, np.float32), i

    source = as_batch_source(Squares(), batch_size=4, seed=5)
    assert isinstance(source, SampleBatches) and len(source) == 3
    order = np.concatenate([y for _, y in source.epoch(2)])
    np.testing.assert_array_equal(order, np.random.default_rng([5, 2]).permutation(10))
    with pytest.raises(TypeError, match="give a batch_size"):
        as_batch_source(Squares())


def test_a_used_up_generator_is_named(backend):
    x, y = np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, np.int64)
    trainer = crossloop.Trainer(nn.mlp(8), optim.SGD(0.1), backend=backend)
    with pytest.raises(ValueError, match="gave no batch in epoch 2; a one-shot iterator"):
        trainer.fit((batch for batch in [(x, y)]), epochs=2)


def test_what_cannot_be_trained_on_is_named():
    with pytest.raises(TypeError, match="cannot train on int"):
        as_batch_source(3)


def test_run_experiment_takes_native_pipelines(tmp_path):
    """The Python API of crossloop train: an Experiment's run on your own DataLoaders."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    from crossloop.experiment import Experiment
    from crossloop.runner import run_experiment

    data = TensorDataset(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    loader = DataLoader(data, batch_size=16, shuffle=True)
    exp = Experiment(model="mlp", epochs=2, backend="torch", device="cpu", plot=False,
                     tensorboard=False, out_dir=str(tmp_path / "run"))
    trainer, folder = run_experiment(exp, data=(loader, DataLoader(data, batch_size=32)))
    assert trainer.step == 8 and len(trainer.history) == 2
    assert "test_accuracy" in trainer.history[-1] and (folder / "history.json").is_file()
