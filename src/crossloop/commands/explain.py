"""``crossloop explain``: what the PyTorch and TensorFlow backends call in each loop
phase, side by side, read from their source as it is installed, with what differs."""

from __future__ import annotations

import argparse

from ..explain import PHASES, UPDATES, phases, render_markdown, render_text

MIN_WIDTH = 63  # two columns of 30 and the separator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phase", default=None, choices=list(PHASES),
                        help="one phase (default: every phase)")
    parser.add_argument("--optimizer", default="adam", choices=list(UPDATES),
                        help="the optimizer whose update apply_gradients shows (default: adam)")
    parser.add_argument("--markdown", action="store_true",
                        help="Markdown (an HTML table per phase) instead of terminal columns")
    parser.add_argument("--width", type=_width, default=None,
                        help="terminal width to lay the two columns out in (default: the "
                             "terminal's)")


def _width(text: str) -> int:
    """argparse type: a width of at least MIN_WIDTH columns (two code columns of 30)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < MIN_WIDTH:
        raise argparse.ArgumentTypeError(f"must be >= {MIN_WIDTH} columns, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    selected = phases(args.phase, args.optimizer)
    print(render_markdown(selected) if args.markdown else render_text(selected, args.width))
    return 0
