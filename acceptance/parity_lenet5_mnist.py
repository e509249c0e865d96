"""Parity acceptance of every optimizer: LeNet-5 on MNIST batches of 64, torch vs
tensorflow on CPU.

    CROSSLOOP_DATA=/path/to/data python acceptance/parity_lenet5_mnist.py
    python acceptance/parity_lenet5_mnist.py --cases rmsprop adagrad adadelta --steps64 100 --steps32 50
    python acceptance/parity_lenet5_mnist.py --out parity-acceptance   # also JSON + PNG per case

float64, 200 steps by default: max |weight diff| and |loss diff| <= 1e-10 at every
step (gradients and same-weights logits are held to 1e-10 too). float32, 100 steps:
loss diff <= 1e-4 relative at every step and logits for the same weights <= 1e-5.
Prints one row per run (logits0 and logitsN: same-weights logits on the initial and
on the final weights; clipped: steps whose gradient norm exceeded clip_norm);
exits 1 if any run misses its tolerance.
"""

import argparse
import sys

from crossloop import nn, optim
from crossloop.data import Batches, load_dataset
from crossloop.parity import run_parity


def cases(steps: int) -> dict[str, optim.Optimizer]:
    """The optimizer set-ups, torch's defaults first, schedules spanning ``steps``."""
    return {
        "sgd": optim.SGD(0.05),
        "sgd-nesterov-cosine": optim.SGD(optim.Cosine(0.01, steps, warmup_steps=steps // 10),
                                         momentum=0.9, nesterov=True),
        "adam": optim.Adam(1e-3),
        "adamw-clip": optim.AdamW(1e-3, weight_decay=0.01, clip_norm=1.0),
        "rmsprop": optim.RMSprop(1e-3),
        "rmsprop-centered-mom": optim.RMSprop(optim.Cosine(1e-3, steps, warmup_steps=steps // 10),
                                              momentum=0.9, centered=True, weight_decay=1e-4),
        "adagrad": optim.Adagrad(),
        "adagrad-decay-init": optim.Adagrad(0.05, lr_decay=0.01, initial_accumulator_value=0.1,
                                            weight_decay=1e-4, clip_norm=1.0),
        "adadelta": optim.Adadelta(),
        "adadelta-step": optim.Adadelta(optim.Step(1.0, max(1, steps // 4), 0.7), weight_decay=1e-4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps64", type=int, default=200, help="steps of the float64 runs")
    parser.add_argument("--steps32", type=int, default=100, help="steps of the float32 runs")
    parser.add_argument("--cases", nargs="+", metavar="PREFIX",
                        help="only the cases whose names start so (default: all)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--lockstep", action="store_true",
                        help="run float32 in lockstep (tensorflow restarts from torch's state "
                        "after every step): what one step adds, without the compounding")
    parser.add_argument("--out", default=None, help="folder for report.json + parity.png per run")
    args = parser.parse_args()

    dataset = load_dataset("mnist", args.data_dir)
    print(f"{'dtype':<8} {'case':<21} {'steps':>5} {'max|dw|':>9} {'max|dloss|':>10} "
          f"{'max rel':>9} {'max|dgrad|':>10} {'logits0':>9} {'logitsN':>9} {'clipped':>7} "
          f"{'lossN':>7} {'s':>6}  verdict")
    failed = 0
    for dtype, steps in (("float64", args.steps64), ("float32", args.steps32)):
        if steps == 0:
            continue
        train = Batches.from_dataset(dataset, "train", 64, seed=0, dtype=dtype)
        for name, opt in cases(steps).items():
            if args.cases and not name.startswith(tuple(args.cases)):
                continue
            report = run_parity(nn.lenet5(), opt, train, steps=steps, dtype=dtype,
                                lockstep=args.lockstep and dtype == "float32")
            failed += not report.passed
            clipped = (sum(r.grad_norm[0] > opt.clip_norm for r in report.steps)
                       if opt.clip_norm else "-")
            label = "f32-lock" if report.lockstep else dtype
            print(f"{label:<8} {name:<21} {steps:>5} {report.max_diff('weights'):>9.2e} "
                  f"{report.max_diff('loss'):>10.2e} {report.max_diff('loss_rel'):>9.2e} "
                  f"{report.max_diff('grads'):>10.2e} {report.logits_diff['initial']:>9.2e} "
                  f"{report.logits_diff['final']:>9.2e} {clipped:>7} "
                  f"{report.steps[-1].loss[0]:>7.4f} {report.seconds:>6.1f}  "
                  f"{'PASS' if report.passed else report.failure}", flush=True)
            if args.out:
                report.save(f"{args.out}/{dtype}-{name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
