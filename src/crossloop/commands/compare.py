"""``crossloop compare``: plot two or more runs' curves on one figure."""

from __future__ import annotations

import argparse
import sys

from ..plots import RunNotFoundError, plot_runs, read_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="two or more run folders (the out_dir of 'crossloop train')")
    parser.add_argument("--out", default="compare.png", help="the PNG to write")
    parser.add_argument("--title", default=None, help="figure title")


def run(args: argparse.Namespace) -> int:
    """Plot the given runs on one figure; 2 on a usage error."""
    if len(args.runs) < 2:
        print("crossloop compare: error: give two or more runs to compare "
              f"(got {len(args.runs)}); one run's curves are its curves.png", file=sys.stderr)
        return 2
    try:
        runs = [read_run(r) for r in args.runs]
    except RunNotFoundError as exc:
        print(f"crossloop compare: error: {exc}", file=sys.stderr)
        return 2
    plot_runs(runs, args.out, title=args.title)
    print(f"wrote {args.out}")
    return 0
