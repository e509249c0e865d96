"""``crossloop compare-models``: a torch model and its Keras port, compared layer by
layer (outputs, gradients) and step by step (weights) on one seeded batch; prints
the table, the first divergence and its likely cause, writes ``report.json`` and
``models.png``.

Each model comes from a ``package.module:function`` that returns it (built and
with its own weights; a ``dtype`` keyword, if the function takes one, gets the
compared dtype). The torch model's weights are transferred into the Keras
model first (``--weight-map none`` keeps both as built, for a hand-written port).
Exit 0 when they agree, 1 when they do not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .. import nn, optim
from ..compare import TOLERANCES, compare_models
from ..resolve import native_model
from ..transfer import PairingError
from . import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The two models, the batch both see, the steps and optimizer, tolerance, pairing
    and outputs."""
    parser.add_argument("--torch", required=True, metavar="PKG.MOD:FN",
                        help="function returning the torch nn.Module")
    parser.add_argument("--keras", required=True, metavar="PKG.MOD:FN",
                        help="function returning the keras.Model")
    parser.add_argument("--input-shape", required=True, type=options.shape,
                        help="one sample's shape, canonical layout: C,H,W for images, T for tokens")
    parser.add_argument("--tokens", type=options.positive_int, default=None, metavar="VOCAB",
                        help="inputs are token ids below VOCAB (default: standard-normal floats)")
    parser.add_argument("--classes", type=options.positive_int, default=10,
                        help="targets are class ids below this (cross-entropy)")
    parser.add_argument("--batch", type=options.positive_int, default=8,
                        help="samples in the one batch both models see")
    parser.add_argument("--steps", type=_steps, default=0,
                        help="training steps to compare (0: the forward pass and gradients)")
    parser.add_argument("--optimizer", default="adam", choices=sorted(optim.OPTIMIZERS),
                        help="crossloop's optimizer (torch's formula on both)")
    parser.add_argument("--lr", type=options.finite_float, default=1e-3,
                        help="learning rate of the training steps")
    parser.add_argument("--dtype", default="float64", choices=nn.DTYPES,
                        help="the dtype both models are built in (float64: any difference over "
                             "the tolerance is a porting bug, not rounding)")
    parser.add_argument("--tol", type=options.finite_float, default=None,
                        help="max |torch - keras| / max(1, max |torch|) (unset: "
                             + ", ".join(f"{k} {v:g}" for k, v in TOLERANCES.items()) + ")")
    parser.add_argument("--weight-map", default="auto", metavar="auto|none|FILE.json",
                        help="how layers pair: in order, not at all (weights as built), or a "
                             "JSON file {torch layer: Keras layer}")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the batch (inputs and targets)")
    parser.add_argument("--out", default="compare-models", type=options.output_folder,
                        help="folder for report.json and models.png")
    parser.add_argument("--no-plot", action="store_true", help="skip models.png")
    parser.add_argument("--rows", type=options.positive_int, default=60, help="most table rows")


def _weight_map(text: str) -> str | dict | None:
    """--weight-map: ``"auto"``, None for ``"none"``, or the JSON file's {torch: Keras} mapping."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    try:
        mapping = json.loads(Path(text).read_text())
    except (OSError, ValueError) as exc:
        raise PairingError(f"--weight-map {text}: not a readable JSON file ({exc})") from None
    if not isinstance(mapping, dict):
        raise PairingError(f"--weight-map {text}: holds a {type(mapping).__name__}, not an object "
                           "{torch layer: Keras layer}")
    return mapping


def _steps(text: str) -> int:
    """--steps: 0 (forward pass and gradients only) or a positive count."""
    return 0 if text.strip() == "0" else options.positive_int(text)


def run(args: argparse.Namespace) -> int:
    """Print the table and the verdict, write the report; 1 when the models disagree."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    weight_map = _weight_map(args.weight_map)
    torch_model = native_model(args.torch, "--torch", dtype=args.dtype)
    keras_model = native_model(args.keras, "--keras", dtype=args.dtype)
    rng = np.random.default_rng(args.seed)
    shape = (args.batch, *args.input_shape)
    x = (rng.integers(0, args.tokens, shape) if args.tokens
         else rng.standard_normal(shape).astype(args.dtype))
    y = rng.integers(0, args.classes, args.batch)
    try:
        report = compare_models(torch_model, keras_model, x, y, steps=args.steps,
                                dtype=args.dtype, optimizer=optim.optimizer(args.optimizer, args.lr),
                                weight_map=weight_map, tolerance=args.tol)
    except PairingError as exc:   # the table of both models' layers, then the one-line error
        print(exc)
        raise PairingError("cannot pair the two models' layers (table above): give --weight-map "
                           "FILE.json with {torch layer: Keras layer}") from None
    print(report.table(args.rows, rest=f"in {os.path.join(args.out, 'report.json')} "
                                       "(--rows shows more here)"))
    print(report.summary())
    paths = report.save(args.out, plot=not args.no_plot)
    print(f"wrote {', '.join(str(p) for p in paths)} ({report.seconds:.1f}s)")
    return 0 if report.passed else 1
