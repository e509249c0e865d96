"""``crossloop explain``: what the PyTorch and TensorFlow backends call in each loop
phase, side by side, read from their source as it is installed, with what differs."""

from __future__ import annotations

import argparse

from ..explain import PHASES, UPDATES, phases, render_markdown, render_text
from .options import int_at_least

MIN_WIDTH = 63  # two columns of 30 and the separator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which phase and optimizer update to show, and how (terminal columns or Markdown)."""
    parser.add_argument("--phase", default=None, choices=list(PHASES),
                        help="one phase (default: every phase)")
    parser.add_argument("--optimizer", default="adam", choices=list(UPDATES),
                        help="the optimizer whose update apply_gradients shows (default: adam)")
    parser.add_argument("--markdown", action="store_true",
                        help="Markdown (an HTML table per phase) instead of terminal columns")
    parser.add_argument("--width", type=int_at_least(MIN_WIDTH, " columns"), default=None,
                        help="terminal width to lay the two columns out in (default: the "
                             "terminal's)")


def run(args: argparse.Namespace) -> int:
    """Print the selected phases' code side by side; 0 (nothing here can fail a run)."""
    selected = phases(args.phase, args.optimizer)
    print(render_markdown(selected) if args.markdown else render_text(selected, args.width))
    return 0
