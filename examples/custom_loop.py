"""The MNIST training loop written out phase by phase, backend-neutral.

This is the loop of the PyTorch and TensorFlow custom-training tutorials
(forward, loss, gradients, apply, metrics), but every phase is a call on a
crossloop backend, so the same lines run on either framework:

    python examples/custom_loop.py --backend torch
    python examples/custom_loop.py --backend tensorflow

``crossloop.Trainer`` runs the same phases fused into one (compiled) step.
"""

import argparse
import time

import crossloop
from crossloop import losses, nn, optim
from crossloop.data import Batches, load_mnist

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--backend", default=None, help="torch or tensorflow")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None)
args = parser.parse_args()

backend = crossloop.get_backend(args.backend)
dataset = load_mnist(args.data_dir)
train = Batches.from_dataset(dataset, "train", args.batch_size, seed=args.seed)
test = Batches.from_dataset(dataset, "test", 1000)

spec = nn.conv1()                                  # Conv 32 3x3 + ReLU + Flatten + Dense 10
params = nn.init_params(spec, seed=args.seed)      # drawn in NumPy: the same on every backend
model = backend.build_model(spec, params)
optimizer = backend.build_optimizer(optim.Adam(args.lr), model)
loss_fn = losses.CrossEntropy()
train_metrics, test_metrics = backend.metrics(), backend.metrics()

for epoch in range(args.epochs):
    started = time.perf_counter()
    for x, y in train.epoch(epoch):
        x, y = backend.to_device(x), backend.to_device(y)
        loss, logits, grads = backend.gradients(model, loss_fn, x, y)   # forward + loss + backward
        optimizer, model = backend.apply_gradients(optimizer, model, grads)
        train_metrics = backend.update_metrics(train_metrics, loss, logits, y)

    for x, y in test.epoch(0):
        x, y = backend.to_device(x), backend.to_device(y)
        logits = backend.forward(model, x, training=False)
        test_metrics = backend.update_metrics(test_metrics, backend.loss(loss_fn, logits, y), logits, y)

    tr, te = backend.metric_results(train_metrics), backend.metric_results(test_metrics)
    print(f"[{backend.name}] epoch {epoch + 1}: loss {tr['loss']:.4f} accuracy {tr['accuracy']:.4f} | "
          f"test loss {te['loss']:.4f} accuracy {te['accuracy']:.4f} | "
          f"{time.perf_counter() - started:.1f}s")
    train_metrics, test_metrics = backend.reset_metrics(train_metrics), backend.reset_metrics(test_metrics)
