"""The ``crossloop`` command line: ``crossloop <command> [options]``.

One module per command, each exposing ``add_arguments(parser)`` and
``run(args) -> int``; a command's module is imported only when it runs, so
``crossloop --help`` is instant and imports no framework. The library modules
hold no command-line code: this package is the only place that parses flags.

Exit codes, for every command: 0 success; 1 the thing it measures failed;
2 bad input (settings, config, data, checkpoint, environment).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> one-line help; the module is crossloop.commands.<command>
COMMANDS = {
    "train": "train a model from flags or a TOML/JSON config",
    "parity": "train on two backends step by step and show where they part",
    "compare": "plot two or more runs on one figure",
}


def _usage() -> str:
    lines = ["usage: crossloop <command> [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, help_ in COMMANDS.items()]
    lines += ["", "Run 'crossloop <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"crossloop: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{name}")
    parser = argparse.ArgumentParser(prog=f"crossloop {name}", description=COMMANDS[name],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)
