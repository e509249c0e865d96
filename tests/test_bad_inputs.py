"""Bad inputs end with the right exit code and one line naming what is wrong and the fix.

The cases are those of ``acceptance/bad_inputs.py`` (which runs them as real
processes and prints the table); here each runs in-process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "acceptance" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs  # dataclasses look their module up while defining
_spec.loader.exec_module(bad_inputs)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSLOOP_CACHE", str(tmp_path / "cache"))
    yield
    for held in bad_inputs._HELD:
        held.release()
    bad_inputs._HELD.clear()


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=[c.name for c in bad_inputs.CASES])
def test_bad_input_gets_one_line_and_the_right_exit_code(case, tmp_path):
    argv, code, line, err = bad_inputs.run_case(case, tmp_path, subprocess_run=False)
    assert bad_inputs.check(case, code, line, err) is None, (argv, code, err)
    if case.code == 2:
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
