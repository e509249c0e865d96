"""``crossloop export``: a model spec as a plain PyTorch module file and a plain Keras
model file, each with ``load_weights`` for crossloop's weights."""

from __future__ import annotations

import argparse

from .. import export, nn
from ..resolve import model_spec
from .options import import_from_here, output_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="lenet5",
                        help=f"a preset ({', '.join(nn.PRESETS)}) or your own as "
                             "package.module:function returning a crossloop.nn spec "
                             "(default: lenet5)")
    parser.add_argument("--out-dir", default="export", type=output_folder,
                        help="folder for <model>_torch.py and <model>_keras.py (default: export)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace those files if they exist (they may hold your edits)")


def run(args: argparse.Namespace) -> int:
    import_from_here()
    for path in export.write(model_spec(args.model), args.out_dir, overwrite=args.overwrite):
        print(f"wrote {path}")
    return 0
