"""Issue 10's parity acceptance: the real models, torch vs tensorflow on the CPU.

    CROSSLOOP_DATA=/path/to/data python acceptance/parity_models.py
    python acceptance/parity_models.py --only tiny-gpt --steps64 20 --steps32 10   # a quick look
    python acceptance/parity_models.py --only resnet20 --resnet-lr 0.05 --steps32 0
    python acceptance/parity_models.py --steps64 0 --lockstep                      # float32 in lockstep

float64, 100 steps: resnet20 (1x28x28) with SGD momentum + weight decay on MNIST
batches; tiny-gpt with AdamW + global-norm clipping + warmup/cosine on the
built-in text corpus (the Python standard library's source, char tokens);
pytorch-mnist with dropout 0 and Adadelta (its recipe's optimizer); lenet5 with
RMSprop and with Adagrad, torch's defaults (acceptance/parity_lenet5_mnist.py runs
every optimizer set-up). Every step: max |diff| of every parameter, of every
BatchNorm running statistic and of the loss <= 1e-10; the eval-mode
logits of the final weights <= 1e-10. float32, 50 steps: relative loss
difference <= 1e-4 at every step. Prints one row per run; exits 1 if any run
misses its tolerance.

The float32 rows also print two yardsticks for the cross-backend difference
beside them, both torch against itself: ``self32``, the largest relative
difference over the same steps between torch's own float32 and float64 losses of
the same run (how far rounding alone moves this training in float32), and
``thr32``, the same float32 run on 1 and on 2 threads (how far a change of
summation order alone moves it). ``--lockstep`` runs float32 so that tensorflow
restarts from torch's weights and optimizer state after every step: what one step
adds, without the compounding.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from crossloop import losses, nn, optim
from crossloop.data import Batches, load_dataset
from crossloop.parity import run_parity
from crossloop.registry import get_backend

# the built-in corpus's characters on this Python (166 on 3.11): the head must cover every
# token id, as `crossloop train --model tiny-gpt --dataset python-stdlib` sizes it
TEXT_VOCAB = load_dataset("python-stdlib", seq_len=64).num_outputs


def cases(steps: int, resnet_lr: float,
          ) -> dict[str, tuple[nn.Sequential, str, Callable[[], optim.Optimizer], str]]:
    """name -> (model, data set, optimizer factory, its description); schedules span
    ``steps``."""
    return {
        "resnet20": (nn.resnet20(), "mnist",
                     lambda: optim.SGD(resnet_lr, momentum=0.9, weight_decay=5e-4),
                     f"sgd lr{resnet_lr:g} m0.9 wd5e-4"),
        "tiny-gpt": (nn.tiny_gpt(num_classes=TEXT_VOCAB), "python-stdlib",
                     lambda: optim.AdamW(optim.Cosine(1e-3, steps, warmup_steps=steps // 10),
                                         weight_decay=0.1, clip_norm=1.0),
                     "adamw clip1 warmup+cosine"),
        "pytorch-mnist": (nn.without_dropout(nn.pytorch_mnist()), "mnist",
                          optim.Adadelta, "adadelta 1.0"),
        "lenet5-rmsprop": (nn.lenet5(), "mnist", lambda: optim.RMSprop(1e-3), "rmsprop 1e-3"),
        "lenet5-adagrad": (nn.lenet5(), "mnist", lambda: optim.Adagrad(), "adagrad 0.01"),
    }


def thread_spread(spec: nn.Sequential, make_opt: Callable[[], optim.Optimizer], train: Batches,
                  steps: int) -> float:
    """Largest relative loss difference between one float32 torch run on 1 thread and
    the same run on 2 (same weights, batches, optimizer)."""
    import torch

    backend, loss = get_backend("torch", device="cpu"), losses.get("cross_entropy")
    runs, saved = [], torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        spec_opt = make_opt()
        model = backend.build_model(spec, nn.init_params(spec, 0, dtype="float32"), "float32")
        opt, values = backend.build_optimizer(spec_opt, model), []
        for step, (x, y) in zip(range(steps), train.epoch(0)):
            opt = backend.set_learning_rate(opt, spec_opt.lr(step))
            value, _, grads = backend.gradients(model, loss, backend.to_device(x),
                                                backend.to_device(y))
            opt, model = backend.apply_gradients(opt, model, grads)
            values.append(float(backend.to_numpy(value)))
        runs.append(values)
    torch.set_num_threads(saved)
    return max(abs(a - b) / abs(a) for a, b in zip(*runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps64", type=int, default=100, help="steps of the float64 runs")
    parser.add_argument("--steps32", type=int, default=50, help="steps of the float32 runs")
    parser.add_argument("--span", type=int, default=100,
                        help="steps tiny-gpt's warmup + cosine schedule spans, whatever runs: "
                        "the float32 runs take its start, so every float32 column is one run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resnet-lr", type=float, default=0.01,
                        help="resnet20's SGD learning rate (0.01: He et al.'s warm-up rate; at 0.05 "
                        "from scratch the run is chaotic enough that float64 rounding grows past "
                        "1e-10 in the running statistics within ~20 steps)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these models")
    parser.add_argument("--lockstep", action="store_true",
                        help="run float32 in lockstep (tensorflow restarts from torch's state "
                        "after every step): what one step adds, without the compounding")
    parser.add_argument("--out", default=None, help="folder for report.json + parity.png per run")
    args = parser.parse_args()

    print(f"{'dtype':<8} {'model':<14} {'optimizer':<26} {'steps':>5} {'max|dparam|':>11} "
          f"{'max|dstats|':>11} {'max|dloss|':>10} {'max rel':>9} {'self32':>9} {'thr32':>9} "
          f"{'logitsN':>9} "
          f"{'s':>6}  verdict")
    failed = 0
    datasets: dict = {}
    losses64: dict[str, list[float]] = {}  # torch's float64 losses, per model
    for dtype, steps in (("float64", args.steps64), ("float32", args.steps32)):
        for name, (spec, data, make_opt, what) in cases(args.span, args.resnet_lr).items():
            if args.only and name not in args.only or steps == 0:
                continue
            if data not in datasets:
                datasets[data] = load_dataset(data, **({"seq_len": spec.input_shape[0]}
                                                       if data == "python-stdlib" else {}))
            train = Batches.from_dataset(datasets[data], "train", args.batch_size, seed=0,
                                         dtype=dtype)
            report = run_parity(spec, make_opt(), train, steps=steps, dtype=dtype,
                                lockstep=args.lockstep and dtype == "float32")
            failed += not report.passed
            torch_losses = [r.loss[0] for r in report.steps]
            if dtype == "float64":
                losses64[name] = torch_losses
            own = [abs(a - b) / abs(b) for a, b in zip(torch_losses, losses64.get(name, []))]
            stats = set(spec.buffers())
            worst = {kind: max((d for r in report.steps for k, d in r.weight_diff.items()
                                if (k in stats) == kind), default=0.0) for kind in (False, True)}
            label = "f32-lock" if report.lockstep else dtype
            spread = thread_spread(spec, make_opt, train, steps) if dtype == "float32" else math.nan
            print(f"{label:<8} {name:<14} {what:<26} {steps:>5} {worst[False]:>11.2e} "
                  f"{worst[True] if stats else float('nan'):>11.2e} "
                  f"{report.max_diff('loss'):>10.2e} {report.max_diff('loss_rel'):>9.2e} "
                  f"{max(own) if own and dtype == 'float32' else float('nan'):>9.2e} "
                  f"{spread:>9.2e} "
                  f"{report.logits_diff['final']:>9.2e} {report.seconds:>6.1f}  "
                  f"{'PASS' if report.passed else report.failure}", flush=True)
            if args.out:
                report.save(f"{args.out}/{dtype}-{name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
