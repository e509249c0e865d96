"""Train a model on MNIST with PyTorch or TensorFlow: the same experiment either way.

    python examples/mnist.py --backend torch --model lenet5 --epochs 2
    python examples/mnist.py --backend tensorflow --model lenet5 --epochs 2

Same seed, same initial weights (drawn by crossloop in NumPy), same batches in
the same order, same optimizer formula: the two runs reach the same accuracy.
"""

import argparse

import crossloop
from crossloop import nn, optim
from crossloop.data import Batches, load_dataset

# -- settings -------------------------------------------------------------------
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument("--backend", default=None,
                    help="torch or tensorflow (default: $CROSSLOOP_BACKEND, else torch)")
parser.add_argument("--model", default="lenet5", choices=sorted(nn.PRESETS))
parser.add_argument("--optimizer", default="adam", choices=sorted(optim.OPTIMIZERS))
parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
parser.add_argument("--schedule", default="cosine", choices=["constant", "cosine"],
                    help="cosine: decay to 0 over the run, after --warmup-steps")
parser.add_argument("--warmup-steps", type=int, default=0)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
parser.add_argument("--data-dir", default=None,
                    help="folder with the four IDX files (default: $CROSSLOOP_DATA/<dataset>, "
                         "then the cache, then download)")
args = parser.parse_args()

# -- data: one seeded NumPy pipeline feeds every backend the same batches --------
dataset = load_dataset(args.dataset, args.data_dir)
train = Batches.from_dataset(dataset, "train", args.batch_size, seed=args.seed)
test = Batches.from_dataset(dataset, "test", 1000)

# -- model and optimizer: neutral specs, built natively by the chosen backend ----
spec = nn.preset(args.model)
total_steps = args.epochs * len(train)
lr = (optim.Cosine(args.lr, total_steps, warmup_steps=args.warmup_steps)
      if args.schedule == "cosine" else args.lr)
optimizer = optim.optimizer(args.optimizer, lr)
trainer = crossloop.Trainer(spec, optimizer, backend=args.backend, device=args.device,
                            seed=args.seed, callbacks=[crossloop.EpochLogger()])
print(f"{spec.name} on {trainer.backend}: {train.num_samples} training samples, "
      f"batch {args.batch_size}, {type(optimizer).__name__} lr {args.lr} ({args.schedule}), seed {args.seed}")

# -- train: one line per epoch ---------------------------------------------------
history = trainer.fit(train, test, epochs=args.epochs)
final = history[-1]
print(f"final test accuracy {final['test_accuracy']:.4f} "
      f"(backend {trainer.backend.name}, {sum(h['seconds'] for h in history):.1f}s training)")
