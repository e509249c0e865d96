"""The ``crossloop`` command: ``crossloop <command> [options]``.

Each command lives in its own module, exposing ``add_arguments(parser)`` and
``run(args) -> int``; a module is imported only when its command runs, so
``crossloop --help`` is instant and imports no framework.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.util import find_spec

# command -> (module, one-line help)
COMMANDS = {
    "train": ("crossloop.experiment", "train a model from flags or a TOML/JSON config"),
    "compare": ("crossloop.plots", "plot two or more runs on one figure"),
    "parity": ("crossloop.parity", "train on two backends step by step and show where they part"),
    "bench": ("crossloop.bench", "measure crossloop's step against hand-written loops"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: entry for name, entry in COMMANDS.items() if find_spec(entry[0]) is not None}


def _usage(commands: dict[str, tuple[str, str]]) -> str:
    lines = ["usage: crossloop <command> [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in commands.items()]
    lines += ["", "Run 'crossloop <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = _available()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"crossloop: unknown command {name!r}\n\n{_usage(commands)}", file=sys.stderr)
        return 2
    module_name, help_ = commands[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"crossloop {name}", description=help_,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
