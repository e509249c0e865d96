"""``crossloop compare``: plot two or more runs' curves on one figure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..plots import plot_runs, read_run
from .options import output_folder

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def figure_path(text: str) -> str:
    """argparse type: a figure file name matplotlib writes as named, in a folder that
    exists or can be made."""
    path = Path(text)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text!r} does not end in {', '.join(FIGURE_SUFFIXES)}: "
                                         "name the figure file, e.g. compare.png")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name the figure file in it")
    output_folder(str(path.parent))
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run folders to plot together, the figure file and its title."""
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="two or more run folders (the out_dir of 'crossloop train')")
    parser.add_argument("--out", default="compare.png", type=figure_path,
                        help="the figure to write: a .png, .pdf or .svg file")
    parser.add_argument("--title", default=None, help="figure title")


def run(args: argparse.Namespace) -> int:
    """Plot the given runs on one figure; 2 on a usage error."""
    if len(args.runs) < 2:
        print("crossloop compare: error: give two or more runs to compare "
              f"(got {len(args.runs)}); one run's curves are its curves.png", file=sys.stderr)
        return 2
    runs = [read_run(r) for r in args.runs]  # a RunNotFoundError is bad input: exit 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    plot_runs(runs, args.out, title=args.title)
    print(f"wrote {args.out}")
    return 0
