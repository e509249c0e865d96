"""crossloop's training loop against hand-written PyTorch and TensorFlow loops and Keras ``fit``.

    python benchmarks/loop_overhead.py                      # mlp, conv1, lenet5; batch 32 and 128
    python benchmarks/loop_overhead.py --quick              # a smoke run (seconds, not a measurement)
    python benchmarks/loop_overhead.py --models lenet5 --batch-sizes 64 --rounds 15 --markdown
    python benchmarks/loop_overhead.py --models resnet20 tiny-gpt --batch-sizes 32
    python benchmarks/loop_overhead.py --frameworks torch --device gpu --contenders hand crossloop

One child process per framework holds every contender of that framework, so all of
them share one allocator, one thread pool and one warm CPU:

    torch:       hand (benchmarks/references/torch_loop.py), crossloop (Trainer, torch backend),
                 keras-fit on Keras's torch backend (KERAS_BACKEND=torch)
    tensorflow:  hand (the custom-loop guide's tf.function step), crossloop (Trainer,
                 tensorflow backend), keras-fit

Each contender trains its own model with Adam (lr 1e-3) on the same samples (MNIST
images normalised once up front; for tiny-gpt, character windows of the built-in
text corpus); the hand-written models are written the ordinary way in each
framework (benchmarks/references/); crossloop and the hand-written loops read the same seeded
``crossloop.data.Batches`` (the TensorFlow and Keras ones in NHWC, Keras's layout), and
crossloop runs with ``prefetch=0`` so both loops do the same work in one thread: the
ratio is the cost of the loop, not of the data. After a warm-up (tracing, first
allocations) every round times one window of each contender, in an order rotated
from round to round, each window lasting about ``--seconds``. The ratio of
samples/s crossloop/hand (and keras-fit/hand) is taken inside each round, between
windows next to each other; the table gives the median over rounds and the spread
(min-max and interquartile range) of those paired ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LR = 1e-3
CONTENDERS = ("hand", "crossloop", "keras-fit")


def dataset(model: str, limit: int) -> tuple[np.ndarray, np.ndarray, dict[str, int], str]:
    """``limit`` training samples for ``model`` with the options its constructors need:
    MNIST images normalised once, float32 NCHW (random images of that shape when MNIST
    is not found), or for ``tiny-gpt`` windows of 64 characters of the built-in
    ``python-stdlib`` corpus. The source is reported."""
    from crossloop.data import Batches, DatasetNotFoundError, load_dataset, transforms

    if model == "tiny-gpt":
        ds = load_dataset("python-stdlib", seq_len=64)
        x, y = ds.train_inputs[:limit], ds.train_targets[:limit]
        return (np.ascontiguousarray(x, dtype=np.int64), np.ascontiguousarray(y, dtype=np.int64),
                {"vocab": ds.num_classes}, "python-stdlib")
    try:
        ds = load_dataset("mnist")
    except DatasetNotFoundError:
        rng = np.random.default_rng(0)
        return (rng.standard_normal((limit, 1, 28, 28), dtype=np.float32),
                rng.integers(0, 10, limit), {}, "random images (MNIST not found)")
    whole = Batches(ds.train_inputs[:limit], ds.train_targets[:limit], limit,
                    transforms=transforms.MNIST, shuffle=False)  # crossloop's MNIST pipeline, once
    x, y = next(whole.epoch(0))
    return x, y, {}, "MNIST"


def spec(model: str, options: dict[str, int]):
    """crossloop's spec of ``model``: its preset, with the data set's vocabulary for tiny-gpt."""
    from crossloop import nn

    if model == "tiny-gpt":
        return nn.presets.tiny_gpt(num_classes=options["vocab"], input_shape=(64,))
    return nn.preset(model)


class Child:
    """The contenders of one framework, for one model and batch size."""

    def __init__(self, framework: str, model: str, batch_size: int, limit: int,
                 device: str = "cpu", contenders: tuple[str, ...] = CONTENDERS):
        os.environ["KERAS_BACKEND"] = framework
        from crossloop import Trainer, optim
        from crossloop.data import Batches

        sys.path.insert(0, str(HERE))
        if framework == "torch":
            from references import torch_loop as hand_lib
            place = {"device": device}  # Keras and TensorFlow place ops on the GPU themselves
        else:
            from references import keras_loop as hand_lib
            place = {}
        x, y, options, self.source = dataset(model, limit)
        self.batch_size, self.x, self.y = batch_size, x, y
        # Keras's layout for images: NHWC, made once (an ordinary Keras program stores it so)
        self.x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x
        self.hand_x = x if framework == "torch" else self.x_nhwc
        self.Batches = Batches
        self.hand = hand_lib.HandLoop(model, LR, **place, **options)
        self.trainer = Trainer(spec(model, options), optim.Adam(LR), backend=framework,
                               device=device, prefetch=0)
        if "keras-fit" in contenders:  # imports Keras, which a torch-only machine may lack
            from references import keras_loop
            self.fit = keras_loop.Fit(model, LR, **options)
        self.epoch = 0

    def window(self, contender: str, samples: int) -> float:
        """Seconds for one window of ``samples`` samples by ``contender``."""
        self.epoch += 1
        x, y = (self.hand_x if contender == "hand" else self.x)[:samples], self.y[:samples]
        if contender == "keras-fit":
            x_fit = self.x_nhwc[:samples]
            start = time.perf_counter()
            self.fit.train(x_fit, y, self.batch_size)
            return time.perf_counter() - start
        batches = self.Batches(x, y, self.batch_size, seed=self.epoch)
        start = time.perf_counter()
        if contender == "hand":
            self.hand.train(batches.epoch(0))
        else:
            self.trainer.train_epoch(batches)
        return time.perf_counter() - start


def run_child(args: argparse.Namespace) -> None:
    """Measure every (model, batch size) of one framework; print one JSON line each."""
    for model in args.models:
        for batch_size in args.batch_sizes:
            contenders = tuple(args.contenders)
            child = Child(args.child, model, batch_size, args.limit, args.device, contenders)
            y = child.y
            warm = min(len(y), 20 * batch_size)
            for name in contenders:
                child.window(name, warm)
            rate = warm / child.window("hand", warm)
            samples = int(min(len(y), max(10 * batch_size, args.seconds * rate)))
            samples -= samples % batch_size
            rates: dict[str, list[float]] = {name: [] for name in contenders}
            for r in range(args.rounds):
                k = r % len(contenders)
                order = contenders[k:] + contenders[:k]
                for name in order:
                    rates[name].append(samples / child.window(name, samples))
            print(json.dumps({"framework": args.child, "device": args.device, "model": model,
                              "batch_size": batch_size,
                              "samples_per_window": samples, "source": child.source,
                              "threads": threads(args.child), "rates": rates}), flush=True)


def threads(framework: str) -> str:
    if framework == "torch":
        import torch
        return f"torch intra-op {torch.get_num_threads()}"
    import tensorflow as tf
    return (f"tf intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
            f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")


def summary(ratios: list[float]) -> str:
    """``median [min-max] IQR x%``: a paired ratio's median and spread."""
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return f"{median:.3f} [{min(ratios):.3f}-{max(ratios):.3f}] IQR {100 * (q3 - q1) / median:.1f}%"


def report(rows: list[dict], markdown: bool) -> None:
    header = ("framework", "model", "batch", "hand samples/s", "crossloop / hand",
              "keras-fit / hand")
    lines = []
    for row in rows:
        rates = row["rates"]
        ratio = {name: [a / b for a, b in zip(rates[name], rates["hand"])]
                 for name in ("crossloop", "keras-fit") if name in rates}
        fit = "Keras on torch" if row["framework"] == "torch" else "Keras on TensorFlow"
        lines.append((f"{row['framework']} ({row['device']})", row["model"], str(row["batch_size"]),
                      f"{statistics.median(rates['hand']):,.0f}", summary(ratio["crossloop"]),
                      f"{summary(ratio['keras-fit'])} ({fit})" if "keras-fit" in ratio else "-"))
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "tensorflow"])
    parser.add_argument("--models", nargs="+", default=["mlp", "conv1", "lenet5"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds (default 7)")
    parser.add_argument("--seconds", type=float, default=1.5,
                        help="length of a window in seconds (default 1.5)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="where every contender trains (default cpu)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS),
                        help="hand is always timed: the ratios are against it")
    parser.add_argument("--limit", type=int, default=60000, help="samples held (default 60000)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 0.2 s windows: a smoke run")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, help="also write the raw rates here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "hand" not in args.contenders:
        parser.error("--contenders must include hand: every ratio is taken against it")
    if args.quick:
        args.rounds, args.seconds, args.limit = 3, 0.2, 4096
    if args.child:
        run_child(args)
        return 0
    rows = []
    for framework in args.frameworks:
        command = [sys.executable, __file__, "--child", framework, "--models", *args.models,
                   "--batch-sizes", *map(str, args.batch_sizes), "--rounds", str(args.rounds),
                   "--seconds", str(args.seconds), "--limit", str(args.limit),
                   "--device", args.device, "--contenders", *args.contenders]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        print(f"# {framework}: {len(args.models) * len(args.batch_sizes)} cases, {args.rounds} rounds "
              f"of ~{args.seconds:g} s windows per contender", file=sys.stderr, flush=True)
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as child:
            for line in child.stdout:  # one line per case, as each finishes
                if line.startswith("{"):
                    rows.append(json.loads(line))
                    print(f"#   {rows[-1]['model']} batch {rows[-1]['batch_size']} done",
                          file=sys.stderr, flush=True)
        if child.returncode:
            raise SystemExit(f"the {framework} child failed (exit {child.returncode})")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"data: {', '.join(sorted({r['source'] for r in rows}))}; threads: "
          + "; ".join(sorted({r["threads"] for r in rows})))
    report(rows, args.markdown)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
