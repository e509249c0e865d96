"""An experiment's data and model, made the one way that ``crossloop train``
(:mod:`crossloop.runner`) and ``crossloop parity`` share, so both run one experiment."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from . import nn, resolve
from .data import Batches, Dataset, load_tfds
from .data.catalog import TEXT_DATASETS
from .data.transforms import AUGMENTATIONS
from .experiment import Experiment

__all__ = ["TEST_BATCH_SIZE", "Data", "load_data", "model_spec"]

TEST_BATCH_SIZE = 1000  # evaluation batch: larger is faster and does not change the result


class Data(NamedTuple):
    """An experiment's data set and its train and test batches."""
    train: Batches
    test: Batches
    dataset: Dataset


def load_data(exp: Experiment) -> Data:
    """The experiment's data set, and its train and test batches from the one seeded
    NumPy pipeline (the training batches augmented as ``exp.augment`` says)."""
    if exp.data_source == "tfds":
        dataset = load_tfds(exp.dataset, exp.data_dir)
    else:
        options = ({"seq_len": exp.seq_len, "tokens": exp.tokens}
                   if exp.dataset in TEXT_DATASETS else {})
        dataset = resolve.load_data_set(exp.dataset, exp.data_dir, **options)
    train = Batches.from_dataset(dataset, "train", exp.batch_size, seed=exp.seed, dtype=exp.dtype,
                                 augment=AUGMENTATIONS[exp.augment])
    test = Batches.from_dataset(dataset, "test", TEST_BATCH_SIZE, dtype=exp.dtype)
    return Data(train, test, dataset)


def model_spec(exp: Experiment, data: Data | tuple[Any, Any] | None = None) -> nn.Sequential:
    """The experiment's model, fitted to ``data``'s input shape and outputs where the
    model takes them (mlp and linear do): the experiment's data set, or your own
    ``(train, test)`` crossloop Batches (outputs: one per class id up to the largest
    id, or one per float target); with a native pipeline, the model's defaults."""
    if isinstance(data, Data):
        return resolve.model_spec(exp.model, input_shape=data.train.input_shape,
                                  num_classes=data.dataset.num_outputs)
    if data is not None and all(isinstance(d, Batches) for d in data):
        return resolve.model_spec(exp.model, input_shape=data[0].input_shape,
                                  num_classes=_outputs(data))
    return resolve.model_spec(exp.model)


def _outputs(data: tuple[Batches, Batches]) -> int:
    """What a model for these batches outputs per sample: largest class id + 1, or the
    number of float targets."""
    ranges = [b.target_range() for b in data]
    if ranges[0] is None:
        return math.prod(data[0].target_shape)
    return max(r[1] for r in ranges if r is not None) + 1
