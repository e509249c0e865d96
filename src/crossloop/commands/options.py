"""Command-line flags generated from the :class:`~crossloop.experiment.Experiment`
fields, shared by ``crossloop train`` and ``crossloop parity``.

Both commands describe their run with one Experiment, so a flag means the same
thing, with the same default and the same checks, in both. Flags default to
"not given", so a ``--config`` file's values survive unless a flag overrides
them; the help shows each field's real default.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from ..experiment import GROUPS, Experiment
from ..files import file_in_the_way


def add_settings(parser: argparse.ArgumentParser, *, groups: Iterable[str] = GROUPS,
                 exclude: Iterable[str] = ()) -> None:
    """``--config`` plus one flag per Experiment field in ``groups`` (but not ``exclude``)."""
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML or JSON file of settings (the keys are the flag names); "
                             "flags given here override it")
    groups, exclude = tuple(groups), set(exclude)
    sections = {group: parser.add_argument_group(f"{group} settings") for group in groups}
    for f in fields(Experiment):
        meta = f.metadata
        if meta["group"] not in groups or f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        shown = "" if f.default is None else f" (default: {f.default})"  # else said in help
        options: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                   "help": meta["help"] + shown}
        if meta["type"] is bool:
            sections[meta["group"]].add_argument(flag, action=argparse.BooleanOptionalAction,
                                                 **options)
        else:
            sections[meta["group"]].add_argument(
                flag, type=meta["type"], choices=meta["choices"],
                metavar=None if meta["choices"] else f.name.upper(), **options)


def settings(args: argparse.Namespace) -> Experiment:
    """The Experiment the parsed flags describe: the ``--config`` file first, then
    every setting flag given on the command line.

    The current folder goes first on ``sys.path`` (:func:`import_from_here`).
    """
    import_from_here()
    return Experiment.from_sources(args.config, vars(args))


def import_from_here() -> None:
    """Put the current folder first on ``sys.path`` (as ``python -m`` does), so
    ``--model``/``--dataset package.module:function`` finds a package there."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def int_at_least(low: int, unit: str = "") -> Callable[[str], int]:
    """argparse type: an int >= ``low`` (``unit`` follows the bound in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}{unit}, got {value}")
        return value
    return parse


positive_int = int_at_least(1)  # argparse type: an int >= 1


def finite_float(text: str) -> float:
    """argparse type: a finite float >= 0 (NaN and infinity are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def output_folder(text: str) -> str:
    """argparse type: a folder to write into, existing or to be made: refused when a
    file stands at it or at one of its parents (checked before any work is done)."""
    blocker = file_in_the_way(text)
    if blocker is not None:
        raise argparse.ArgumentTypeError(f"{blocker} is a file, not a folder")
    return text


def shape(text: str) -> tuple[int, ...]:
    """argparse type: one sample's shape as comma-separated sizes >= 1, e.g. 1,28,28."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,28,28")
    return sizes
