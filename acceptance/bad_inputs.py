"""Bad inputs and misuse, as a new user meets them: every case must end with the
right exit code and one line naming what is wrong and the fix (never a traceback).

    python acceptance/bad_inputs.py            # runs each case as a real `crossloop` process
    python acceptance/bad_inputs.py --markdown # ...and prints the table for the docs

Each case builds its inputs (tiny generated MNIST files, short runs, damaged files)
in a temporary folder, runs one command, and checks its exit code, that stderr's
last line carries the expected words, and that no traceback was printed. Exits 1
if any case misses. ``tests/test_bad_inputs.py`` runs the same cases in-process.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shlex
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossloop import checkpoint, commands, storage
from crossloop.data import write_idx
from crossloop.data.mnist import FILES
from crossloop.run_folder import RunFolder


@dataclass(frozen=True)
class Case:
    """One misuse: ``setup(tmp)`` builds the inputs and returns the command's argv
    (after ``crossloop``); it must exit ``code`` with ``words`` in its last line."""
    name: str
    setup: Callable[[Path], list[str]]
    code: int
    words: str


def tiny_mnist(tmp: Path, train: int = 64, test: int = 32) -> Path:
    folder = tmp / "mnist"
    if not folder.exists():
        rng = np.random.default_rng(0)
        folder.mkdir(parents=True)
        for name, n in zip(FILES, (train, train, test, test)):
            shape, high = ((n, 28, 28), 256) if "images" in name else ((n,), 10)
            write_idx(folder / (name + ".gz"), rng.integers(0, high, shape).astype(np.uint8))
    return folder


def common(tmp: Path) -> list[str]:
    """A run of two tiny epochs on the CPU with nothing but the essential files."""
    return ["--data-dir", str(tiny_mnist(tmp)), "--model", "mlp", "--epochs", "2",
            "--batch-size", "32", "--backend", "torch", "--device", "cpu", "--no-plot",
            "--no-tensorboard", "--quiet"]


def trained(tmp: Path, name: str = "run", *extra: str) -> Path:
    """A finished run folder (trained in this process)."""
    out = tmp / name
    if not out.exists():
        code = commands.main(["train", *common(tmp), "--out-dir", str(out), *extra])
        assert code == 0, f"setting up {out} failed with exit code {code}"
    return out


def forged(tmp: Path, change: Callable[[dict], None]) -> list[str]:
    """Resume a run whose checkpoint was edited by ``change(state)`` and re-saved."""
    out = trained(tmp, "forged")
    path = out / "checkpoints" / "last.safetensors"
    state = checkpoint.load(path)
    change(state)
    tensors = {f"{prefix}/{k}": v for key, prefix in checkpoint.SECTIONS.items()
               for k, v in state.pop(key).items()}
    storage.write(path, tensors, {"format": checkpoint.FORMAT, **state})
    return ["train", "--resume", str(out)]


def _locked(tmp: Path) -> list[str]:
    held = RunFolder(tmp / "busy").hold()  # released when this process ends
    _HELD.append(held)
    return ["train", *common(tmp), "--out-dir", str(tmp / "busy")]


_HELD: list[RunFolder] = []


def _damaged_idx(tmp: Path) -> list[str]:
    folder = tiny_mnist(tmp)
    path = folder / (FILES[0] + ".gz")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return ["train", *common(tmp), "--out-dir", str(tmp / "out")]


def _inconsistent_idx(tmp: Path) -> list[str]:
    folder = tiny_mnist(tmp)
    write_idx(folder / (FILES[1] + ".gz"), np.zeros(10, np.uint8))  # 10 labels for 64 images
    return ["train", *common(tmp), "--out-dir", str(tmp / "out")]


def _gzip_bomb(tmp: Path) -> list[str]:
    folder = tiny_mnist(tmp)
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 64, 28, 28)
    zeros = bytes(1 << 20)
    with gzip.open(folder / (FILES[0] + ".gz"), "wb", compresslevel=1) as f:
        f.write(header)
        for _ in range(256):  # 256 MB inflated from ~0.25 MB
            f.write(zeros)
    return ["train", *common(tmp), "--out-dir", str(tmp / "out")]


def _idx_ndim_255(tmp: Path) -> list[str]:
    folder = tiny_mnist(tmp)
    (folder / (FILES[0] + ".gz")).unlink()
    (folder / FILES[0]).write_bytes(bytes([0, 0, 8, 255]) + b"\xff" * (4 * 255))
    return ["train", *common(tmp), "--out-dir", str(tmp / "out")]


def _idx_huge(tmp: Path) -> list[str]:
    folder = tiny_mnist(tmp)
    (folder / (FILES[0] + ".gz")).unlink()
    (folder / FILES[0]).write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 70000, 70000, 70000))
    return ["train", *common(tmp), "--out-dir", str(tmp / "out")]


def _huge_header(tmp: Path) -> list[str]:
    out = trained(tmp)
    path = out / "checkpoints" / "last.safetensors"
    blob = b'{"__metadata__": {"crossloop": "' + b" " * (90 << 20) + b'"}}'
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    return ["train", "--resume", str(out)]


def _metadata_not_json(tmp: Path) -> list[str]:
    out = trained(tmp)
    path = out / "checkpoints" / "last.safetensors"
    from safetensors.numpy import save_file
    save_file({"params/0": np.zeros(2)}, str(path), metadata={"crossloop": "{not json"})
    return ["train", "--resume", str(out)]


def _non_utf8_config(tmp: Path) -> list[str]:
    (tmp / "run.toml").write_bytes(b'model = "ml\xffp"\n')
    return ["train", "--config", str(tmp / "run.toml")]


def _a_file(tmp: Path) -> Path:
    (tmp / "afile").write_text("not a folder")
    return tmp / "afile"


def _nan_guard(tmp: Path) -> list[str]:
    return ["train", *common(tmp), "--out-dir", str(tmp / "boom"), "--optimizer", "sgd",
            "--lr", "1e30", "--schedule", "constant"]


CASES = [
    Case("two runs into one folder", _locked, 2, "is in use by another crossloop run (PID"),
    Case("a new run over a finished one",
         lambda t: ["train", *common(t), "--out-dir", str(trained(t))], 2,
         "already holds a run"),
    Case("--resume SRC --out-dir DST branches",
         lambda t: ["train", "--resume", str(trained(t, "src", "--schedule", "constant")),
                    "--out-dir", str(t / "dst"), "--epochs", "3"], 0, "results in"),
    Case("checkpoint: epoch 99, step -5",
         lambda t: forged(t, lambda s: s.update(epoch=99, step=-5)), 2, "step must be >= 0"),
    Case("checkpoint: history 'nonsense'",
         lambda t: forged(t, lambda s: s.update(history="nonsense")), 2, "history must be a list"),
    Case("checkpoint: int8 parameters",
         lambda t: forged(t, lambda s: s["model"].update(
             {k: v.astype(np.int8) for k, v in s["model"].items()})), 2, "has dtype int8"),
    Case("checkpoint: NaN parameters",
         lambda t: forged(t, lambda s: s["model"]["1.weight"].fill(np.nan)), 2,
         "holds NaN or infinite values"),
    Case("checkpoint header: 90 MB of JSON", _huge_header, 2, "the limit is"),
    Case("checkpoint metadata: not JSON", _metadata_not_json, 2, "not valid JSON"),
    Case("--resume with another optimizer",
         lambda t: ["train", "--resume", str(trained(t, "adam", "--epochs", "1")), "--epochs",
                    "2", "--optimizer", "sgd"], 2, "--allow-change optimizer"),
    Case("--resume, another optimizer with momentum",
         lambda t: ["train", "--resume", str(trained(t, "adam", "--epochs", "1")), "--epochs",
                    "2", "--optimizer", "sgd", "--momentum", "0.9"], 2,
         "--allow-change optimizer"),
    Case("--resume, longer run under a cosine schedule",
         lambda t: ["train", "--resume", str(trained(t)), "--epochs", "3"], 2,
         "--allow-change epochs"),
    Case("damaged IDX file (truncated gzip)", _damaged_idx, 2, "corrupt gzip stream"),
    Case("inconsistent IDX files", _inconsistent_idx, 2, "counts differ"),
    Case("gzip bomb: 0.25 MB inflating to 256 MB", _gzip_bomb, 2, "trailing garbage"),
    Case("IDX header with ndim 255", _idx_ndim_255, 2, "declares 255 dimensions"),
    Case("IDX header declaring 343 TB", _idx_huge, 2, "more than the 1073741824-byte limit"),
    Case("--lr nan", lambda t: ["train", *common(t), "--lr", "nan"], 2,
         "lr must be a finite number"),
    Case("--lr inf", lambda t: ["train", *common(t), "--lr", "inf"], 2,
         "lr must be a finite number"),
    Case("--clip-norm nan", lambda t: ["train", *common(t), "--clip-norm", "nan"], 2,
         "clip_norm must be a finite number"),
    Case("non-UTF-8 config", _non_utf8_config, 2, "is not UTF-8 text"),
    Case("--backend ''", lambda t: ["train", *common(t), "--backend", ""], 2, "backend is empty"),
    Case("parity --steps 0", lambda t: ["parity", "--steps", "0"], 2, "must be >= 1"),
    Case("parity --backends torch", lambda t: ["parity", "--backends", "torch"], 2,
         "parity compares two different backends"),
    Case("parity --device gpu without a GPU",
         lambda t: ["parity", "--device", "gpu", "--data-dir", str(tiny_mnist(t))], 2,
         "sees no GPU"),
    Case("loss turns NaN", _nan_guard, 1, "no checkpoint was written"),
    Case("--resume ''", lambda t: ["train", "--resume", ""], 2, "give the run folder to continue"),
    Case("--out-dir is a file", lambda t: ["train", *common(t), "--out-dir", str(_a_file(t))], 2,
         "is a file, not a folder"),
    Case("--seed 2**64", lambda t: ["train", *common(t), "--seed", str(2**64)], 2,
         "seed must be <= 4294967295"),
    Case("--name ../x", lambda t: ["train", *common(t), "--name", "../x"], 2,
         "is a path, not a name"),
]


def run_case(case: Case, tmp: Path, *, subprocess_run: bool) -> tuple[list[str], int, str, str]:
    """(argv, exit code, last line, stderr) of ``case``, run in a child process (the
    real command line) or in this process. The last line is stderr's on failure,
    stdout's on success."""
    argv = case.setup(tmp)
    if subprocess_run:
        proc = subprocess.run([sys.executable, "-m", "crossloop", *argv], capture_output=True,
                              text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    else:
        import contextlib
        import io
        out_buffer, err_buffer = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err_buffer), contextlib.redirect_stdout(out_buffer):
            try:
                code = commands.main(argv)
            except SystemExit as exit_:  # argparse rejected a flag
                code = exit_.code
        out, err = out_buffer.getvalue(), err_buffer.getvalue()
    lines = [line for line in (err if code else out).splitlines() if line.strip()]
    return argv, code, (lines[-1] if lines else ""), err


def check(case: Case, code: int, line: str, err: str) -> str | None:
    """What is wrong with a case's outcome, or None."""
    if code != case.code:
        return f"exit code {code}, expected {case.code}"
    if case.words not in line:
        return f"the last line lacks {case.words!r}"
    if "Traceback" in err:
        return "a traceback was printed"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    os.environ.setdefault("CROSSLOOP_CACHE", tempfile.mkdtemp(prefix="crossloop-cache-"))
    failed = 0
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="crossloop-bad-") as tmp:
            argv, code, line, err = run_case(case, Path(tmp), subprocess_run=True)
            problem = check(case, code, line, err)
            failed += problem is not None
            shown = line.replace(tmp, "$TMP")
            command = "crossloop " + shlex.join(argv).replace(tmp, "$TMP")
            rows.append((case.name, command, code, shown))
            print(f"{'FAIL' if problem else 'ok  '} {case.name}: exit {code}: {shown}"
                  + (f"  <- {problem}" if problem else ""), flush=True)
        for held in _HELD:
            held.release()
        _HELD.clear()
    if args.markdown:
        print("\n| case | command | exit code | the line printed |\n|---|---|---|---|")
        for name, command, code, line in rows:
            print(f"| {name} | `{command}` | {code} | `{line}` |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
