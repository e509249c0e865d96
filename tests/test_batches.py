"""The general batch pipeline: any inputs and targets, transforms, seeded augmentation
(byte for byte, on every backend and across a resume), memory maps, prefetching."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

import crossloop
from crossloop import nn, optim
from crossloop.data import Batches, load_mnist, prefetch
from crossloop.data.transforms import (
    CROP_FLIP,
    MNIST,
    BatchContext,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    keyed_uniform,
)
from crossloop.registry import available_backends, get_backend


def images(n: int = 20, c: int = 3, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 images (N, C, H, W); each label is the sample's index."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, c, size, size), dtype=np.uint8), np.arange(n)


def per_sample(batches: Batches, epoch: int) -> dict[int, bytes]:
    """Each sample's bytes in epoch ``epoch``, by its index (the label of ``images``)."""
    return {int(i): x.tobytes() for xb, yb in batches.epoch(epoch) for x, i in zip(xb, yb)}


# -- inputs and targets of any kind ----------------------------------------------

def test_float_features_and_float_targets():
    x = np.linspace(0, 1, 30).reshape(10, 3)
    y = np.arange(20, dtype=np.float64).reshape(10, 2)
    b = Batches(x, y, 4, shuffle=False, dtype="float64")
    (x0, y0), *_ = b.epoch(0)
    assert x0.dtype == y0.dtype == np.float64 and y0.shape == (4, 2)
    np.testing.assert_array_equal(x0, x[:4])
    assert (b.input_shape, b.target_shape) == ((3,), (2,))
    assert b.target_variance() == pytest.approx(np.var(y[:, 0]))


def test_nan_or_infinity_in_a_batch_is_refused_naming_the_samples():
    x, y = np.ones((6, 3), np.float64), np.zeros((6, 1))
    x[3, 1], y[5, 0] = np.nan, np.inf
    batches = Batches(x, y, 2, shuffle=False)  # sample 0 is clean: made without complaint
    epoch = batches.epoch(0)
    next(epoch)
    with pytest.raises(crossloop.data.DataError, match=r"the inputs of sample 3 hold NaN"):
        next(epoch)
    with pytest.raises(crossloop.data.DataError, match=r"the targets of sample 5 hold NaN"):
        batches.batch(np.array([4, 5]), 0)
    x[3, 1], x[4, 0] = 1e39, -1e39  # finite in float64, infinite in the batches' float32
    with pytest.raises(crossloop.data.DataError, match=r"samples 3, 4 hold .* in float32\)"):
        Batches(x, np.zeros(6), 2, shuffle=False).batch(np.array([0, 3, 4]), 0)


def test_token_ids_and_token_targets_become_int64():
    tokens = np.arange(50, dtype=np.uint16).reshape(10, 5)
    b = Batches(tokens, tokens + 1, 3, dtype="float32")
    x, y = next(b.epoch(0))
    assert x.dtype == y.dtype == np.int64 and x.shape == y.shape == (3, 5)
    np.testing.assert_array_equal(y, x + 1)
    assert b.input_dtype == np.int64 and b.target_shape == (5,)


def test_from_dataset_gives_the_mnist_batches_of_old(tiny_mnist):
    """The one-liner keeps today's bytes: ((x / 255) - 0.1307) / 0.3081, NCHW, seeded order."""
    ds = load_mnist(tiny_mnist)
    train = Batches.from_dataset(ds, "train", 32, seed=3)
    table = ((np.arange(256) / 255 - 0.1307) / 0.3081).astype(np.float32)
    for epoch in (0, 1):
        order = np.random.default_rng([3, epoch]).permutation(128)
        for i, (x, y) in enumerate(train.epoch(epoch)):
            idx = order[32 * i : 32 * (i + 1)]
            np.testing.assert_array_equal(x, table[ds.train_inputs[idx]][:, None])
            np.testing.assert_array_equal(y, ds.train_targets[idx])


def test_normalize_per_channel_lookup_table_equals_the_formula():
    x, _ = images(6)
    ctx = BatchContext(0, 0, np.arange(6), np.dtype("float32"))
    norm = Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3), max_value=255)
    mean, std = np.array([0.4, 0.5, 0.6])[:, None, None], np.array([0.2, 0.25, 0.3])[:, None, None]
    expected = ((x / 255 - mean) / std).astype(np.float32)
    np.testing.assert_array_equal(norm(x, ctx), expected)                      # uint8: table
    np.testing.assert_array_equal(norm(x.astype(np.float64), ctx), expected)   # float: formula
    with pytest.raises(ValueError, match="3 means/stds"):
        norm(x[:, :2], ctx)
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize(0.5, 0.0)


def test_a_memory_map_is_read_batch_by_batch_never_copied(tmp_path: Path):
    path = tmp_path / "inputs.u8"
    np.memmap(path, np.uint8, "w+", shape=(64, 4))[:] = 1
    inputs = np.memmap(path, np.uint8, "r", shape=(64, 4))
    b = Batches(inputs, np.zeros(64, np.int64), 16, shuffle=False, transforms=[Normalize()])
    np.memmap(path, np.uint8, "r+", shape=(64, 4))[:] = 7  # written after the Batches was made
    assert all((x == 7).all() for x, _ in b.epoch(0))     # so it kept the map, not a copy


# -- seeded augmentation -----------------------------------------------------------

def test_keyed_uniform_depends_only_on_the_sample():
    together = keyed_uniform(5, 2, np.array([3, 9, 11]), 1, 4)
    alone = keyed_uniform(5, 2, np.array([9]), 1, 4)
    np.testing.assert_array_equal(together[1], alone[0])
    assert together.min() >= 0 and together.max() < 1
    for other in (keyed_uniform(6, 2, [9], 1, 4), keyed_uniform(5, 3, [9], 1, 4),
                  keyed_uniform(5, 2, [9], 2, 4)):
        assert not np.array_equal(other, alone)  # seed, epoch and stream all count


def test_augmentation_bytes_are_pinned():
    """The draws are integer arithmetic: these bytes are the same on every machine."""
    x, y = images(8)
    b = Batches(x, y, 8, shuffle=False, transforms=CROP_FLIP, seed=1)
    (xb, _), = b.epoch(3)
    assert hashlib.sha256(xb.tobytes()).hexdigest()[:16] == "d4707d444aee6e5a"


def test_augmentation_is_a_function_of_seed_epoch_and_sample():
    x, y = images(20)
    small, large = (Batches(x, y, n, seed=4, transforms=CROP_FLIP) for n in (3, 7))
    unshuffled = Batches(x, y, 20, seed=4, transforms=CROP_FLIP, shuffle=False)
    for epoch in (0, 1):
        assert per_sample(small, epoch) == per_sample(large, epoch) == per_sample(unshuffled, epoch)
    assert per_sample(small, 0) != per_sample(small, 1)
    assert per_sample(small, 0) != per_sample(Batches(x, y, 3, seed=5, transforms=CROP_FLIP), 0)


def test_a_resumed_epoch_sees_the_same_augmented_bytes():
    x, y = images(20)
    b = Batches(x, y, 6, seed=2, transforms=(*CROP_FLIP, *MNIST[1:]))
    full = [(xb.tobytes(), yb.tobytes()) for xb, yb in b.epoch(5)]
    for k in range(len(b) + 1):
        assert [(xb.tobytes(), yb.tobytes()) for xb, yb in b.epoch(5, start=k)] == full[k:]


def test_random_crop_is_a_window_of_the_padded_image_and_flip_mirrors():
    x, y = images(64, c=1)
    ctx = BatchContext(0, 0, np.arange(64), np.dtype("float32"))
    cropped = RandomCrop(2)(x, ctx)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for i in range(64):
        hits = [(t, s) for t in range(5) for s in range(5)
                if np.array_equal(padded[i, :, t:t + 8, s:s + 8], cropped[i])]
        assert hits, f"sample {i} is not a window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets differ from sample to sample
    flipped = RandomHorizontalFlip()(x, ctx)
    mirrored = [np.array_equal(f, o[..., ::-1]) for f, o in zip(flipped, x)]
    assert all(m or np.array_equal(f, o) for m, f, o in zip(mirrored, flipped, x))
    assert 16 < sum(mirrored) < 48
    grey = RandomCrop(2)(x[:, 0], ctx)  # (B, H, W) works too, with the same draws
    np.testing.assert_array_equal(grey, cropped[:, 0])


def test_augmented_batches_reach_torch_and_tensorflow_byte_identical():
    """A torch run and a TensorFlow run train on the same augmented pixels: what each
    framework holds on its device, read back in canonical layout, is byte-identical."""
    if not {"torch", "tensorflow"} <= set(available_backends()):
        pytest.skip("needs both backends")
    x, y = images(40)
    data = Batches(x, y % 10, 8, seed=3, transforms=(*CROP_FLIP, Normalize(0.5, 0.25, 255)))
    seen = {}
    for name in ("torch", "tensorflow"):
        backend, record = get_backend(name, device="cpu"), []
        to_device = backend.to_device

        def spy(array, backend=backend, to_device=to_device, record=record):
            tensor = to_device(array)
            back = backend.to_numpy(tensor)
            if backend.name == "tensorflow" and back.ndim == 4:  # NHWC inside TensorFlow
                back = back.transpose(0, 3, 1, 2)
            record.append(back.tobytes())
            return tensor

        backend.to_device = spy
        trainer = crossloop.Trainer(nn.mlp(8, input_shape=(3, 8, 8)), optim.SGD(0.1),
                                    backend=backend)
        trainer.fit(data, epochs=2)
        seen[name] = record
    assert len(seen["torch"]) == 2 * 2 * len(data)  # inputs and targets, every step
    assert seen["torch"] == seen["tensorflow"]


def test_a_resumed_run_trains_on_the_same_augmented_bytes(backend, monkeypatch):
    """Stopped mid-epoch and resumed from its state, a run feeds the backend exactly the
    bytes an uninterrupted run does."""
    x, y = images(40)
    data = Batches(x, y % 10, 8, seed=3, transforms=(*CROP_FLIP, Normalize(0.5, 0.25, 255)))
    record: list[bytes] = []
    train_step = backend.train_step

    def spy(model, optimizer, loss, metrics, x, y):  # the batches trained on, not prefetched
        record.append(backend.to_numpy(x).tobytes())
        return train_step(model, optimizer, loss, metrics, x, y)

    monkeypatch.setattr(backend, "train_step", spy)

    class StopAt(crossloop.Callback):
        def on_batch_end(self, trainer):
            if trainer.step == 7:
                trainer.stop("pause")

    def run(callbacks=(), state=None):
        trainer = crossloop.Trainer(nn.mlp(8, input_shape=(3, 8, 8)), optim.SGD(0.1),
                                    backend=backend, callbacks=callbacks)
        if state is not None:
            trainer.load_state_dict(state)
        trainer.fit(data, epochs=3)
        seen = record[:]
        record.clear()
        return trainer, seen

    _, straight = run()
    first, before = run([StopAt()])
    _, after = run(state=first.state_dict())
    assert first.step == 7 and len(straight) == 3 * len(data)
    assert before + after == straight


# -- prefetching ------------------------------------------------------------------

def test_prefetch_keeps_order_and_raises_where_the_producer_failed():
    assert list(prefetch(range(100), depth=3)) == list(range(100))
    assert list(prefetch(range(5), depth=0)) == list(range(5))

    def broken():
        yield 1
        yield 2
        raise KeyError("batch 3")

    got = []
    with pytest.raises(KeyError, match="batch 3"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1, 2]


def test_leaving_a_prefetched_loop_stops_its_thread():
    before = threading.active_count()
    items = prefetch(iter(range(10**9)), depth=2)
    for i in items:
        if i == 5:
            break
    items.close()
    assert threading.active_count() == before


def test_prefetching_changes_nothing_in_training(backend, tiny_mnist):
    train = Batches.from_dataset(load_mnist(tiny_mnist), "train", 16, augment=CROP_FLIP)
    params = []
    for depth in (0, 3):
        trainer = crossloop.Trainer(nn.mlp(16), optim.Adam(1e-3), backend=backend, prefetch=depth)
        trainer.fit(train, epochs=2)
        params.append(trainer.params())
    for name in params[0]:
        np.testing.assert_array_equal(params[0][name], params[1][name])


# -- the model meets the data -------------------------------------------------------------

@pytest.mark.parametrize("spec, batches, loss, words", [
    (nn.mlp(8), lambda: Batches(*images(8, c=1, size=8), 4, transforms=[Normalize()]),
     "cross_entropy", r"takes inputs of shape \(1, 28, 28\), the data gives \(1, 8, 8\)"),
    (nn.mlp(8, input_shape=(1, 8, 8)), lambda: Batches(*images(8, c=1, size=8), 4),
     "cross_entropy", r"integers \(int64\), but model mlp starts with Linear"),
    (nn.mlp(8, input_shape=(1, 8, 8)),
     lambda: Batches(*images(8, c=1, size=8), 4, transforms=[Normalize()], dtype="float64"),
     "cross_entropy", "the batches are float64, the run is float32"),
    (nn.linear(1, (3,)), lambda: Batches(np.ones((8, 3)), np.ones(8), 4), "mse",
     r"mse needs float targets of the model's output shape \(1,\); the data gives float32 "
     r"targets of shape \(\)"),
    (nn.linear(2, (3,)), lambda: Batches(np.ones((8, 3)), np.ones(8), 4), "cross_entropy",
     r"cross_entropy needs integer targets of shape \(\)"),
    (nn.linear(3, (2,)), lambda: Batches(np.ones((8, 2)), np.arange(8) % 3 + 5, 4),
     "cross_entropy", r"targets must be class ids in \[0, 3\) for a model with 3 outputs; got 7"),
    (nn.linear(3, (2,)), lambda: Batches(np.ones((8, 2)), np.arange(8) % 3 - 1, 4),
     "cross_entropy", r"class ids in \[0, 3\) .*; got -1"),
])
def test_a_model_that_does_not_fit_the_data_is_named(backend, spec, batches, loss, words):
    trainer = crossloop.Trainer(spec, optim.SGD(0.1), backend=backend, loss=loss)
    with pytest.raises(ValueError, match=words):
        trainer.fit(batches())
