"""Code lines as the exported files lay them out: indented, each with its comment in
one column and its note (where the frameworks differ) as comment lines above it,
the first time that note is due (a person says it once, not at every BatchNorm)."""

from __future__ import annotations

import textwrap
from typing import NamedTuple

WIDTH = 88


class Line(NamedTuple):
    """One code line: its ``depth`` (in steps of four spaces), the ``code``, the
    ``comment`` at its end (shapes) and the ``note`` written above it."""
    depth: int
    code: str
    comment: str = ""
    note: str = ""


def layout(lines: list[Line]) -> str:
    """The lines as text, the end-of-line comments aligned in one column (after the
    longest line that fits the files' width; a longer line's comment just follows it),
    each distinct note written once, above the first line it belongs to."""
    width = max((4 * line.depth + len(line.code) for line in lines
                 if line.comment and 4 * line.depth + len(line.code) <= WIDTH), default=0)
    out, said = [], set()
    for depth, code, comment, note in lines:
        indent = " " * 4 * depth
        if note not in said:
            out += [f"{indent}# {part}" for part in textwrap.wrap(note, WIDTH - len(indent) - 2)]
            said.add(note)
        out.append(f"{indent + code:<{width}}  # {comment}" if comment else indent + code)
    return "\n".join(out)


def wrap(text: str) -> str:
    """A docstring paragraph wrapped to the files' width."""
    return "\n".join(textwrap.wrap(text, WIDTH))
