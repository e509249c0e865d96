"""How exact are a model's float32 gradients? One MNIST batch at the initial weights,
each backend in float32 against float64, and the two backends against each other.

    CROSSLOOP_DATA=/path/to/data python acceptance/float32_gradients.py --model resnet20

Each row gives, for the worst tensor, max |g_a - g_b| divided by max |g_b| (the
tensor's largest float64 gradient), so 1e-7 is float32's own rounding and 1e-3
means the gradient is a small difference of large sums. The first row is the
yardstick for the rest: float64 arithmetic on the input and weights rounded to
float32, i.e. how much of the float32 difference the rounded data alone explain.
Dropout is set to 0: its masks come from each framework's own generator.
"""

from __future__ import annotations

import argparse

import numpy as np

from crossloop import losses, nn
from crossloop.data import Batches, load_dataset
from crossloop.registry import get_backend

Grads = dict[str, np.ndarray]


def gradients(backend_name: str, spec: nn.Sequential, params: Grads, x: np.ndarray,
              y: np.ndarray, dtype: str) -> Grads:
    """Canonical gradients of the cross-entropy at ``params`` on one batch (training mode)."""
    b = get_backend(backend_name, device="cpu")
    model = b.build_model(spec, {k: v.astype(dtype) for k, v in params.items()}, dtype)
    _, _, grads = b.gradients(model, losses.get("cross_entropy"), b.to_device(x.astype(dtype)),
                              b.to_device(y))
    return {k: v.astype(np.float64) for k, v in b.canonical_gradients(model, grads).items()}


def worst(a: Grads, b: Grads) -> str:
    """The tensor with the largest difference relative to its largest gradient in ``b``."""
    rel = {k: float(np.abs(a[k] - b[k]).max() / np.abs(b[k]).max()) for k in b}
    name = max(rel, key=rel.__getitem__)
    return f"{rel[name]:.2e}  ({name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", help="a preset taking 1x28x28 images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    spec = nn.without_dropout(nn.preset(args.model))  # dropout masks are each framework's own
    params = nn.init_params(spec, args.seed, dtype="float64")
    train = Batches.from_dataset(load_dataset("mnist"), "train", args.batch_size, seed=args.seed,
                                 dtype="float64")
    x, y = next(iter(train.epoch(0)))
    rounded = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
    x32 = x.astype(np.float32).astype(np.float64)
    exact = gradients("torch", spec, params, x, y, "float64")
    of_rounded = gradients("torch", spec, rounded, x32, y, "float64")
    torch32 = gradients("torch", spec, params, x, y, "float32")
    tf32 = gradients("tensorflow", spec, params, x, y, "float32")
    print(f"{args.model}, one MNIST batch of {args.batch_size}, initial weights (seed {args.seed}):")
    print(f"  float64 on float32-rounded input and weights vs float64  {worst(of_rounded, exact)}")
    print(f"  torch float32 vs torch float64                           {worst(torch32, exact)}")
    print(f"  tensorflow float32 vs torch float64                      {worst(tf32, exact)}")
    print(f"  tensorflow float32 vs torch float32                      {worst(tf32, torch32)}")


if __name__ == "__main__":
    main()
