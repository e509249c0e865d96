"""Tests for crossloop.data.load_tfds, on TFDS's own mock data: no network, no download."""

from __future__ import annotations

import json

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from crossloop import commands  # noqa: E402
from crossloop.data import Batches, DatasetNotFoundError, load_tfds  # noqa: E402
from crossloop.registry import available_backends  # noqa: E402

N = 48  # mock examples per split


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_tfds_gives_the_idx_loaders_arrays(name, tmp_path):
    with tfds.testing.mock_data(num_examples=N):
        ds = load_tfds(name, tmp_path)
    assert ds.name == name
    for images, labels in ((ds.train_inputs, ds.train_targets), (ds.test_inputs, ds.test_targets)):
        assert images.shape == (N, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (N,) and labels.dtype == np.uint8
        assert labels.max() <= 9
    x, y = next(Batches.from_dataset(ds, "train", 16).epoch(0))
    assert x.shape == (16, 1, 28, 28) and y.dtype == np.int64


def test_multi_channel_images_are_refused(tmp_path):
    with tfds.testing.mock_data(num_examples=8), pytest.raises(ValueError, match="single-channel"):
        load_tfds("cifar10", tmp_path)


def test_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no_such_set.*--data-source idx"):
        load_tfds("no_such_set", tmp_path)


def test_crossloop_train_with_tfds_source(tmp_path, capsys):
    out = tmp_path / "run"
    with tfds.testing.mock_data(num_examples=N):
        code = commands.main(["train", "--data-source", "tfds", "--data-dir", str(tmp_path / "tfds"),
                         "--model", "mlp", "--epochs", "1", "--batch-size", "16",
                         "--backend", available_backends()[0], "--device", "cpu",
                         "--out-dir", str(out), "--no-tensorboard", "--no-plot"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["data_source"] == "tfds"
    [epoch] = json.loads((out / "history.json").read_text())
    assert epoch["epoch"] == 1 and 0 <= epoch["test_accuracy"] <= 1
