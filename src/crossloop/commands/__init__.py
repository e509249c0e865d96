"""The ``crossloop`` command line: ``crossloop <command> [options]``.

One module per command, each exposing ``add_arguments(parser)`` and
``run(args) -> int``; a command's module is imported only when it runs, so
``crossloop --help`` is instant and imports no framework. The library modules
hold no command-line code: this package is the only place that parses flags.

Every command keeps one exit-code contract (:data:`EXIT_CODES`, shown in each
``--help``): bad input -- any :class:`crossloop.errors.InputError`, or a flag
argparse rejects -- prints one line naming what is wrong and the fix, and exits
2; a traceback appears only with ``--debug``, or for a bug (exit 70).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import NoReturn

from ..errors import InputError

# command -> one-line help; the module is crossloop.commands.<command, '-' as '_'>
COMMANDS = {
    "train": "train a model from flags or a TOML/JSON config",
    "parity": "train on two backends step by step and show where they part",
    "compare": "plot two or more runs on one figure",
    "explain": "show what each backend calls in every loop phase, side by side",
    "export": "write a model as a plain PyTorch module file and a plain Keras model file",
    "compare-models": "compare a torch model and its Keras port layer by layer, step by step",
}

EXIT_CODES = """exit codes:
  0    success
  1    the thing the command measures failed (parity over tolerance; two models
       that disagree; training stopped by the non-finite guard)
  2    bad input: a setting, config file, data, checkpoint or run folder, or the
       environment (a missing framework or GPU); one line says what and the fix
  70   internal error: a bug in crossloop (the traceback is printed)
  130, 143  stopped by SIGINT (Ctrl-C) or SIGTERM, after saving"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option defaults in the help (unless its text says the default itself), and the
    exit-code table kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        return text if "(default" in text else super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, with the house rule for bad flags: one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _usage() -> str:
    lines = ["usage: crossloop <command> [options]", "", "commands:"]
    lines += [f"  {name:<15} {help_}" for name, help_ in COMMANDS.items()]
    lines += ["", "Run 'crossloop <command> --help' for a command's options.", "", EXIT_CODES]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"crossloop: error: unknown command {name!r}; choose one of "
              f"{', '.join(COMMANDS)} (see crossloop --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    parser = Parser(prog=f"crossloop {name}", description=COMMANDS[name], epilog=EXIT_CODES,
                    formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the full traceback instead of one line")
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    args.argv = rest  # as given: a command that starts copies of itself (train --nproc) passes it on
    try:
        return int(module.run(args) or 0)
    except InputError as exc:
        if args.debug:  # the traceback too; the exit code still says "bad input"
            traceback.print_exc()
        print(f"crossloop {name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training, whose own handler stops it cleanly
        if args.debug:
            traceback.print_exc()
        print(f"crossloop {name}: stopped by Ctrl-C", file=sys.stderr)
        return 130
    except Exception:  # not the user's input: a bug, shown in full
        traceback.print_exc()
        print(f"crossloop {name}: internal error (a bug in crossloop; the traceback above "
              "says where): please report it", file=sys.stderr)
        return 70


def one_line(exc: BaseException) -> str:
    """An error's message on one line: line breaks of multi-line messages become '; ',
    or a space after a line that ends in ':' (a heading and its list)."""
    text = ""
    for line in (raw.strip() for raw in str(exc).splitlines() if raw.strip()):
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text
