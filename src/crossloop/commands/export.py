"""``crossloop export``: a model spec as a plain PyTorch module file and a plain Keras
model file, each with ``load_weights`` for crossloop's weights."""

from __future__ import annotations

import argparse

from .. import export, nn
from ..resolve import ResolveError, model_spec
from .options import import_from_here, output_folder, positive_int, shape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model to export, its input shape and classes, and where the two files go."""
    parser.add_argument("--model", default="lenet5",
                        help=f"a preset ({', '.join(nn.PRESETS)}) or your own as "
                             "package.module:function returning a crossloop.nn spec "
                             "(default: lenet5)")
    parser.add_argument("--out-dir", default="export", type=output_folder,
                        help="folder for <model>_torch.py and <model>_keras.py (default: export)")
    parser.add_argument("--input-shape", type=shape, default=None, metavar="C,H,W",
                        help="one sample's shape, for models that fit their data (mlp, linear, "
                             "resnet20, your own): the shape the weights were trained on "
                             "(default: the model's own)")
    parser.add_argument("--classes", type=positive_int, default=None,
                        help="outputs, for models that take num_classes (default: the model's own)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace those files if they exist (they may hold your edits)")


def run(args: argparse.Namespace) -> int:
    """Write <model>_torch.py and <model>_keras.py and print their paths; 0. Bad input (a
    model or shape that does not resolve, files there without --overwrite) raises an
    ``InputError``, which the dispatcher turns into exit code 2."""
    import_from_here()
    spec = model_spec(args.model, input_shape=args.input_shape, num_classes=args.classes)
    if args.input_shape is not None and tuple(spec.input_shape) != args.input_shape:
        raise ResolveError(f"model {args.model} takes input shape {spec.input_shape}, not "
                           f"{args.input_shape}: drop --input-shape")
    for path in export.write(spec, args.out_dir, overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0
