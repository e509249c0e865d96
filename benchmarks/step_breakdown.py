"""Where a torch training step's time goes, crossloop against the hand-written loop:
milliseconds per call of each piece, on batches already on the device.

    python benchmarks/step_breakdown.py --device gpu --models resnet20 tiny-gpt
    python benchmarks/step_breakdown.py --device gpu --models tiny-gpt --profile

Pieces: the hand-written step (benchmarks/references/torch_loop.py), crossloop's
``backend.train_step``, the two forward passes alone, and ``backend.to_device``
for one batch. With ``--profile``, torch's profiler table (self CPU time) of ten
steps of each. loop_overhead.py measures the whole loop; this says which piece
a difference comes from.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_overhead  # noqa: E402
from references import torch_loop  # noqa: E402

from crossloop import Trainer, optim  # noqa: E402


def per_call_ms(fn: Callable[[], object], device: str, calls: int = 50) -> float:
    """Milliseconds per call of ``fn`` after five warm-up calls (GPU work included)."""
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    for _ in range(5):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls * 1e3


def breakdown(model: str, device: str, batch_size: int, profile: bool) -> None:
    x, y, options, _ = loop_overhead.dataset(model, 4 * batch_size)
    x, y = x[:batch_size], y[:batch_size]
    hand = torch_loop.HandLoop(model, loop_overhead.LR, device=device, **options)
    trainer = Trainer(loop_overhead.spec(model, options), optim.Adam(loop_overhead.LR),
                      backend="torch", device=device, prefetch=0)
    backend = trainer.backend
    cx, cy = backend.to_device(x), backend.to_device(y)
    hx, hy = torch.from_numpy(x).to(hand.device), torch.from_numpy(y).to(hand.device)

    def hand_step() -> None:
        loss = F.cross_entropy(hand.model(hx).flatten(0, -2), hy.flatten())
        loss.backward()
        hand.optimizer.step()
        hand.optimizer.zero_grad()

    def crossloop_step() -> None:
        backend.train_step(trainer.model, trainer.optimizer, trainer.loss, trainer.train_metrics,
                           cx, cy)

    def hand_forward() -> None:
        with torch.no_grad():
            hand.model(hx)

    def crossloop_forward() -> None:
        with torch.no_grad():
            backend.forward(trainer.model, cx, training=True)

    pieces = {"hand step": hand_step, "crossloop train_step": crossloop_step,
              "hand forward": hand_forward, "crossloop forward": crossloop_forward,
              "to_device (x, y)": lambda: (backend.to_device(x), backend.to_device(y))}
    times = {name: per_call_ms(fn, device) for name, fn in pieces.items()}
    print(f"{model}, batch {batch_size}, {device}: "
          + ", ".join(f"{name} {ms:.3f} ms" for name, ms in times.items()), flush=True)
    if profile:
        from torch.profiler import ProfilerActivity
        for name in ("hand step", "crossloop train_step"):
            with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(10):
                    pieces[name]()
            print(name, prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "tiny-gpt"])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--profile", action="store_true", help="also print torch's profiler table")
    args = parser.parse_args()
    for model in args.models:
        breakdown(model, args.device, args.batch_size, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
