"""Data-pipeline measurements: prefetching, and augmentation's cost with and without it.

    python benchmarks/data_pipeline.py                       # torch, CIFAR-shaped data, both models
    python benchmarks/data_pipeline.py --backend tensorflow --repeats 5

Data: ``--n`` random uint8 images 3x32x32 with labels (the CIFAR-10 format,
generated, so no download), normalised per channel like CIFAR-10, batches of
``--batch-size``. For each model (a small CNN, and an MLP whose step is short
enough for the data to matter), it trains one warm-up epoch, then measures
training samples/s (the trainer's own count) for augmentation none / crop-flip
x prefetch 0 / 2, alternating the four settings ``--repeats`` times and
reporting the median. It also times the pipeline alone (making every batch of an
epoch, no training), which is the augmentation's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import crossloop
from crossloop import nn, optim
from crossloop.data import Batches
from crossloop.data.transforms import AUGMENTATIONS, Normalize

CIFAR = Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), max_value=255)


def models() -> dict[str, nn.Sequential]:
    return {
        "cnn": nn.Sequential((nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(32 * 8 * 8, 10)),
                             input_shape=(3, 32, 32), name="cnn"),
        "mlp": nn.mlp(128, 10, (3, 32, 32)),
    }


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, augment: str) -> Batches:
    return Batches(x, y, batch_size, seed=0, transforms=(*AUGMENTATIONS[augment], CIFAR))


def pipeline_rate(data: Batches, epochs: int = 3) -> float:
    """Samples/s of making the batches alone."""
    started = time.perf_counter()
    for epoch in range(epochs):
        for _ in data.epoch(epoch):
            pass
    return epochs * data.num_samples / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--n", type=int, default=10_000, help="training images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, args.n)
    data = {augment: batches(x, y, args.batch_size, augment) for augment in ("none", "crop-flip")}
    backend = crossloop.get_backend(args.backend, device="cpu")
    print(f"{backend}, {args.n} images 3x32x32, batch {args.batch_size}, median of "
          f"{args.repeats}\n")
    print("pipeline alone (samples/s): " + ", ".join(
        f"{augment} {statistics.median(pipeline_rate(d) for _ in range(args.repeats)):,.0f}"
        for augment, d in data.items()))

    print(f"\n{'model':<5} {'augment':<10} {'prefetch':>8} {'samples/s':>10}")
    for name, spec in models().items():
        rates: dict[tuple[str, int], list[float]] = {}
        trainers = {}
        for augment in data:
            for depth in (0, 2):
                trainer = crossloop.Trainer(spec, optim.SGD(0.01), backend=backend, prefetch=depth)
                trainer.fit(data[augment], epochs=1)  # warm-up: tracing, allocator, caches
                trainers[augment, depth] = trainer
        for _ in range(args.repeats):
            for key, trainer in trainers.items():
                logs = trainer.train_epoch(data[key[0]])
                rates.setdefault(key, []).append(logs["samples_per_second"])
        for (augment, depth), values in rates.items():
            print(f"{name:<5} {augment:<10} {depth:>8} {statistics.median(values):>10,.0f}")


if __name__ == "__main__":
    main()
