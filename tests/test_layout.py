"""The shape of the project: command-line code in one package, a wheel that holds the
library alone (no benchmarks, no reference loops, no acceptance scripts)."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = [ROOT / "src" / "crossloop", ROOT / "backends"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_commands_package_parses_flags():
    commands = ROOT / "src" / "crossloop" / "commands"
    offenders = [str(path.relative_to(ROOT)) for folder in LIBRARY for path in folder.rglob("*.py")
                 if commands not in path.parents and "argparse" in _imports(path)]
    assert offenders == []


def test_the_wheel_holds_the_library_alone(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("crossloop-*.whl")
    files = [name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name]
    tops = {name.split("/")[0] for name in files}
    assert tops == {"crossloop", "crossloop_torch", "crossloop_tensorflow"}
    assert not [f for f in files if any(w in f for w in ("bench", "baseline", "acceptance"))]
    assert "crossloop/trainer.py" in files and "crossloop_torch/backend.py" in files
