"""docs/tutorial.md runs: every ```python block, in order, in one namespace, as a
reader pasting them into one session would (the blocks assert what the text says)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"

pytest.importorskip("torch")
pytest.importorskip("tensorflow")


def code_blocks(text: str) -> list[tuple[int, str]]:
    """Each ```python block with the line of the file it starts on."""
    return [(text.count("\n", 0, m.start(1)), m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)]


def test_the_tutorial_runs_end_to_end(mnist):  # the fixture skips without $CROSSLOOP_DATA
    blocks = code_blocks(TUTORIAL.read_text(encoding="utf-8"))
    assert len(blocks) >= 9
    namespace: dict = {"__name__": "tutorial"}
    for line, code in blocks:  # padded, so a traceback names the line of tutorial.md
        exec(compile("\n" * line + code, str(TUTORIAL), "exec"), namespace)
    assert namespace["broken"].failure.tensor  # section 4 found the broken formula
    assert not namespace["fixed"].passed  # section 7: momentum fixed, running variance not
