"""PyTorch's own examples/mnist, written the ordinary way, as the yardstick for the
``pytorch-mnist`` preset: what does the published setup reach after N epochs?

    CROSSLOOP_DATA=/path/to/data python acceptance/pytorch_mnist_native.py --epochs 2 --seeds 0 1 2 3

The model, optimizer, schedule, batch sizes and input normalisation are those of
https://github.com/pytorch/examples/blob/main/mnist/main.py (Net: conv 32, conv 64,
max-pool, dropout 0.25, fc 9216-128, dropout 0.5, fc 128-10, log_softmax + nll_loss;
Adadelta lr 1.0; StepLR(step_size=1, gamma=0.7); batch 64, test batch 1000;
``torch.manual_seed(seed)``; shuffled DataLoader). torchvision is not needed: the
four IDX files are read with NumPy and normalised as its ``Normalize((0.1307,),
(0.3081,))`` does. Prints the test accuracy after every epoch, one row per seed.
No crossloop code runs here.
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    """examples/mnist's Net, as published."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def _split(folder: Path, prefix: str) -> TensorDataset:
    x = _idx(folder / f"{prefix}-images-idx3-ubyte.gz").astype(np.float32)
    x = (x[:, None] / 255.0 - 0.1307) / 0.3081
    y = _idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))


def run(seed: int, epochs: int, train: TensorDataset, test: TensorDataset) -> list[float]:
    """examples/mnist's main() for ``epochs`` epochs: test accuracy after each."""
    torch.manual_seed(seed)
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    test_loader = DataLoader(test, batch_size=1000)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    accuracies = []
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            F.nll_loss(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test_loader)
        accuracies.append(correct / len(test))
        scheduler.step()
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the four MNIST .gz files ($CROSSLOOP_DATA/mnist)")
    args = parser.parse_args()
    folder = Path(args.data_dir or Path(os.environ.get("CROSSLOOP_DATA", ".")) / "mnist")
    train, test = _split(folder, "train"), _split(folder, "t10k")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for seed in args.seeds:
        started = time.perf_counter()
        accuracies = run(seed, args.epochs, train, test)
        print(f"seed {seed}: test accuracy per epoch "
              f"{' '.join(f'{a:.4f}' for a in accuracies)}  ({time.perf_counter() - started:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
