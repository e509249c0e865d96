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


def test_debug_shows_the_traceback_and_keeps_exit_code_2(capsys):
    from crossloop import commands

    assert commands.main(["train", "--debug", "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("epochs must be > 0, got 0")


def test_ctrl_c_before_training_is_one_line_and_exit_130(capsys, monkeypatch, tmp_path):
    """Ctrl-C while the data loads (before the trainer's own handler is up)."""
    from crossloop import commands, runner

    def interrupted(exp):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "load_data", interrupted)
    assert commands.main(["train", "--out-dir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "crossloop train: stopped by Ctrl-C" and not (tmp_path / "run").exists()
