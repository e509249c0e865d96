"""``crossloop parity``: train one ``crossloop train`` experiment on two backends step
by step, print where they part, write ``report.json`` and ``parity.png``.

The experiment comes from the same settings as ``crossloop train`` (flags or
``--config``): the same model, data, batches, optimizer and schedule, of which
the first ``--steps`` steps are compared. Parity adds only its own options:
the steps, the dtype (float64 by default, where any difference over 1e-10 is a
logic difference, not rounding), the two backends and the tolerances.
"""

from __future__ import annotations

import argparse
import dataclasses

from .. import nn
from ..parity import DEFAULT_TOLERANCES, Tolerance, run_parity
from ..prepare import load_data, model_spec
from ..registry import get_backend
from . import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Parity's own options, then the experiment settings it shares with ``crossloop train``."""
    own = parser.add_argument_group("parity")
    own.add_argument("--backends", default="torch,tensorflow", type=_two_backends,
                     help="two backends, comma-separated")
    own.add_argument("--dtype", dest="parity_dtype", default="float64", choices=nn.DTYPES,
                     help="precision of the comparison (the experiment's own dtype is not used)")
    own.add_argument("--steps", type=options.positive_int, default=50,
                     help="optimizer steps to compare")
    own.add_argument("--lockstep", action="store_true",
                     help="restart the second backend from the first's weights (running "
                     "statistics included) and optimizer state after every step: each row "
                     "shows what one step adds, not how differences grow (for float32 runs "
                     "that amplify rounding)")
    own.add_argument("--no-dropout", action="store_true",
                     help="compare the model with every Dropout at p=0 (each framework draws "
                     "its own dropout masks, so with dropout on the runs cannot agree)")
    own.add_argument("--out", default="parity", type=options.output_folder,
                     help="folder for report.json and parity.png")
    own.add_argument("--no-plot", action="store_true", help="skip parity.png")
    own.add_argument("--rows", type=options.positive_int, default=50,
                     help="most table rows to print")
    for f in dataclasses.fields(Tolerance):
        per_dtype = ", ".join(f"{dtype} {getattr(tol, f.name)}"
                              for dtype, tol in DEFAULT_TOLERANCES.items())
        own.add_argument(f"--tol-{f.name.replace('_', '-')}", type=options.finite_float,
                         default=None,
                         help=f"unset: per dtype ({per_dtype}; None = unchecked)"
                         + (", times max(1, max |logits|)" if f.name == "logits" else ""))
    options.add_settings(parser, groups=("data", "model", "run"), exclude=("backend", "dtype"))


def _two_backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise argparse.ArgumentTypeError(
            f"parity compares two different backends, got {text!r}; e.g. torch,tensorflow")
    return names


def run(args: argparse.Namespace) -> int:
    """Print the table, write report.json and parity.png; 1 when a tolerance is
    exceeded (the message names step and tensor). Bad input raises (exit 2)."""
    exp = dataclasses.replace(options.settings(args), dtype=args.parity_dtype)
    backends = [get_backend(name, device=exp.device) for name in args.backends]  # fail fast
    tolerance = dataclasses.replace(Tolerance.default(exp.dtype), **{
        f.name: getattr(args, f"tol_{f.name}") for f in dataclasses.fields(Tolerance)
        if getattr(args, f"tol_{f.name}") is not None})
    data = load_data(exp)
    train, spec, opt = data.train, model_spec(exp, data), exp.optimizer_spec(len(data.train))
    if args.no_dropout:
        spec = nn.without_dropout(spec)
    print(f"parity: {spec.name} on {exp.dataset}, batch {exp.batch_size}, {args.steps} steps"
          f"{' in lockstep' if args.lockstep else ''}, {exp.dtype}, {type(opt).__name__}, "
          f"{' vs '.join(args.backends)}", flush=True)
    report = run_parity(spec, opt, train, steps=args.steps, backends=backends, dtype=exp.dtype,
                        loss=exp.loss, seed=exp.seed, tolerance=tolerance, device=exp.device,
                        lockstep=args.lockstep, config={"experiment": exp.to_dict()})
    print(report.table(args.rows))
    print(report.summary())
    if report.failure and report.failure.quantity == "loss" and exp.dtype == "float32" \
            and not args.lockstep:
        print("      float32 runs can drift apart by rounding alone (a BatchNorm model does "
              "against itself on another thread count): --lockstep checks each step from one "
              "state, --dtype float64 checks the formulas to 1e-10")
    paths = report.save(args.out, plot=not args.no_plot)
    print(f"wrote {', '.join(str(p) for p in paths)} ({report.seconds:.1f}s)")
    return 0 if report.passed else 1
