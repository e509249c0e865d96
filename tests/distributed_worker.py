"""A data-parallel training run for the distributed tests and acceptance script.

``python tests/distributed_worker.py OUT.npz --backend torch --steps 3`` trains
lenet5 (or ``--model resnet20``; SGD with momentum and gradient clipping, float64
by default) on seeded random digits (``--regression``: float targets, MSE), or
with ``--mnist`` on MNIST, and (on rank 0)
saves to OUT.npz the parameters and running statistics after each of the first
``--steps`` steps (flattened in the order of ``names``, ``sizes`` values each),
the final ones, the epoch logs, the steps per second after ``--warmup`` steps and
the framework's thread count. Started by ``crossloop.launch.launch`` it runs
data-parallel on the torchrun-style world the launcher describes; alone, with
``--replicas N`` (TensorFlow), under MirroredStrategy; alone without it, as the
single-process reference; ``--sync-batchnorm`` synchronises BatchNorm across the
replicas. ``--max-steps K`` ends training after step K;
``--stop-at K`` has rank 0 send itself SIGTERM at step K (the ranks agree to
stop after one step, and rank 0 saves to ``--checkpoint DIR``); ``--resume
FILE`` continues from a saved checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time

import numpy as np

from crossloop import checkpoint, nn, optim
from crossloop.callbacks import Callback, CheckpointCallback
from crossloop.data import Batches
from crossloop.distributed import World, get_data_parallel_backend, is_chief, leaving
from crossloop.registry import get_backend
from crossloop.trainer import Interrupted, Trainer


class Record(Callback):
    """Keeps the parameters after each of the first ``keep`` steps and times the steps
    after ``warmup``; stops at ``max_steps``; with ``stop_at``, rank 0 sends itself
    SIGTERM at that step."""

    def __init__(self, keep: int, warmup: int, max_steps: int | None, stop_at: int | None):
        self.keep, self.warmup, self.max_steps, self.stop_at = keep, warmup, max_steps, stop_at
        self.params: list[dict[str, np.ndarray]] = []
        self.times: dict[int, float] = {}

    def on_batch_end(self, trainer) -> None:
        if len(self.params) < self.keep:
            self.params.append(trainer.params())
        self.times[trainer.step] = time.perf_counter()
        if trainer.step == self.max_steps:
            trainer.stop(f"{self.max_steps} steps done")
        if trainer.step == self.stop_at and is_chief(trainer.backend):
            os.kill(os.getpid(), signal.SIGTERM)

    def steps_per_second(self) -> float:
        first, last = min(self.times) + self.warmup, max(self.times)
        if last <= first:
            return float("nan")
        return (last - first) / (self.times[last] - self.times[first])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--replicas", type=int, default=None)
    parser.add_argument("--model", choices=("lenet5", "resnet20"), default="lenet5")
    parser.add_argument("--sync-batchnorm", action="store_true")
    parser.add_argument("--steps", type=int, default=3, help="steps to record")
    parser.add_argument("--samples", type=int, default=201, help="201: the last batch is odd")
    parser.add_argument("--mnist", action="store_true", help="MNIST instead of random digits")
    parser.add_argument("--regression", action="store_true",
                        help="float targets (N, 10) and the MSE loss instead of class ids")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=0, help="steps left out of the timing")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="a folder for last.safetensors")
    parser.add_argument("--resume", default=None, help="a checkpoint file to continue from")
    args = parser.parse_args()
    threads = _set_threads(args.backend)
    if World.from_env() is not None or args.replicas:
        options = {"replicas": args.replicas} if args.replicas else {}
        options["sync_batchnorm"] = args.sync_batchnorm
        backend = get_data_parallel_backend(args.backend, device="cpu", **options)
    else:
        backend = get_backend(args.backend, device="cpu")
    _train(args, backend, threads)


def _train(args: argparse.Namespace, backend, threads: int) -> None:
    train = test = _batches(args)
    record = Record(args.steps, args.warmup, args.max_steps, args.stop_at)
    callbacks: list[Callback] = [record]
    if args.checkpoint:
        callbacks.append(CheckpointCallback(args.checkpoint, write=is_chief(backend)))
    trainer = Trainer(getattr(nn, args.model)(), optim.SGD(lr=0.05, momentum=0.9, clip_norm=0.5),
                      backend=backend, dtype=args.dtype, seed=1, track_grad_norm=True,
                      callbacks=callbacks, loss="mse" if args.regression else "cross_entropy")
    if args.resume:
        trainer.load_state_dict(checkpoint.load(args.resume))
    try:
        with leaving(backend):  # a torch rank left to tear gloo down at exit can abort
            history = trainer.fit(train, None if args.mnist else test, epochs=args.epochs)
    except Interrupted:
        raise SystemExit(143) from None
    if is_chief(backend):
        final = trainer.params()
        np.savez(args.out, params=np.array([_flat(p) for p in record.params]),
                 names=sorted(final), sizes=[final[k].size for k in sorted(final)],
                 final=_flat(final), history=json.dumps(history),
                 steps_per_second=record.steps_per_second(), threads=threads)


def _batches(args: argparse.Namespace) -> Batches:
    if args.mnist:
        from crossloop.data import load_mnist
        return Batches.from_dataset(load_mnist(download=False), "train", args.batch_size,
                                    seed=3, dtype=args.dtype)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 1, 28, 28))
    y = rng.normal(size=(args.samples, 10)) if args.regression else rng.integers(0, 10, args.samples)
    return Batches(x, y, args.batch_size, dtype=args.dtype, seed=3)


def _set_threads(backend: str) -> int:
    """The framework's intra-op threads: OMP_NUM_THREADS when set (TensorFlow is told so
    before it starts), else the framework's default."""
    wanted = int(os.environ.get("OMP_NUM_THREADS", "0"))
    if backend == "tensorflow":
        import tensorflow as tf
        if wanted:
            tf.config.threading.set_intra_op_parallelism_threads(wanted)
            tf.config.threading.set_inter_op_parallelism_threads(wanted)
        return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1
    import torch
    return torch.get_num_threads()


def _flat(params: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([params[k].ravel() for k in sorted(params)])


if __name__ == "__main__":
    main()
