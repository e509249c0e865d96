"""A data-parallel training run for the distributed tests and acceptance script.

``python tests/distributed_worker.py OUT.npz --backend torch --steps 3`` trains
lenet5 in float64 on seeded random digits and (on rank 0) saves the parameters
after every step, the epoch logs and the steps per second to OUT.npz. Started
by ``crossloop.launch.launch`` it runs data-parallel on the torchrun-style
world the launcher describes; alone, with ``--replicas N`` (TensorFlow), under
MirroredStrategy; alone without it, as the single-process reference.
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
from crossloop.backend import get_backend
from crossloop.callbacks import Callback, CheckpointCallback
from crossloop.data import Batches
from crossloop.distributed import World, get_data_parallel_backend, is_chief
from crossloop.trainer import Interrupted, Trainer


class Record(Callback):
    """Keeps the parameters after every step (the first ``keep`` steps); with
    ``stop_at``, rank 0 sends itself SIGTERM at that step."""

    def __init__(self, keep: int, stop_at: int | None):
        self.keep, self.stop_at, self.params = keep, stop_at, []

    def on_batch_end(self, trainer) -> None:
        if len(self.params) < self.keep:
            self.params.append(trainer.params())
        if trainer.step == self.stop_at and is_chief(trainer.backend):
            os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--replicas", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3, help="steps to record")
    parser.add_argument("--samples", type=int, default=201, help="201: the last batch is odd")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="a folder for last.safetensors")
    parser.add_argument("--resume", default=None, help="a checkpoint file to continue from")
    args = parser.parse_args()
    if World.from_env() is not None or args.replicas:
        options = {"replicas": args.replicas} if args.replicas else {}
        backend = get_data_parallel_backend(args.backend, device="cpu", **options)
    else:
        backend = get_backend(args.backend, device="cpu")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 1, 28, 28))
    y = rng.integers(0, 10, args.samples)
    batches = Batches(x, y, args.batch_size, dtype=args.dtype, seed=3)
    record = Record(args.steps, args.stop_at)
    callbacks: list[Callback] = [record]
    if args.checkpoint:
        callbacks.append(CheckpointCallback(args.checkpoint, write=is_chief(backend)))
    trainer = Trainer(nn.lenet5(), optim.SGD(lr=0.05, momentum=0.9, clip_norm=0.5),
                      backend=backend, dtype=args.dtype, seed=1, track_grad_norm=True,
                      callbacks=callbacks)
    if args.resume:
        trainer.load_state_dict(checkpoint.load(args.resume))
    started = time.perf_counter()
    try:
        history = trainer.fit(batches, batches, epochs=args.epochs)
    except Interrupted:
        raise SystemExit(143) from None
    seconds = time.perf_counter() - started
    if is_chief(backend):
        np.savez(args.out, params=np.array([_flat(p) for p in record.params]),
                 final=_flat(trainer.params()), history=json.dumps(history),
                 steps_per_second=trainer.step / seconds,
                 threads=os.environ.get("OMP_NUM_THREADS", ""))


def _flat(params: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([params[k].ravel() for k in sorted(params)])


if __name__ == "__main__":
    main()
