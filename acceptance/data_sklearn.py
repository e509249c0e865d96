"""The data acceptance on scikit-learn's bundled data, through ``crossloop train`` itself.

    python acceptance/data_sklearn.py            # needs scikit-learn (the sklearn extra)

Runs each command below on torch and on tensorflow (CPU, float32, one process each),
reads both runs' history.json, and checks: digits test accuracy >= 0.95, diabetes
test R^2 >= 0.4, and that the two backends' final training and test losses agree
within the float32 parity tolerance (1e-4 relative). Exits 1 if any check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = {
    "digits": (["--dataset", "digits", "--model", "mlp", "--epochs", "10", "--batch-size", "32"],
               "test_accuracy", 0.95),
    "diabetes": (["--dataset", "diabetes", "--model", "linear", "--loss", "mse", "--optimizer",
                  "sgd", "--lr", "0.02", "--schedule", "constant", "--epochs", "50",
                  "--batch-size", "32"], "test_r2", 0.4),
}
BACKENDS = ("torch", "tensorflow")
TOLERANCE = 1e-4


def train(flags: list[str], backend: str, out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "crossloop", "train", *flags, "--backend", backend,
               "--device", "cpu", "--quiet", "--no-plot", "--no-tensorboard", "--out-dir", str(out)]
    print("$ crossloop train " + " ".join(command[4:]), flush=True)
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                   stdout=subprocess.DEVNULL)
    return json.loads((out / "history.json").read_text())[-1]


def main() -> int:
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (flags, metric, bound) in RUNS.items():
            last = {b: train(flags, b, Path(tmp) / f"{name}-{b}") for b in BACKENDS}
            for b in BACKENDS:
                ok = last[b][metric] >= bound
                failed += not ok
                print(f"  {name:<8} {b:<10} {metric} {last[b][metric]:.4f} (>= {bound}: "
                      f"{'PASS' if ok else 'FAIL'}), loss {last[b]['loss']:.6f}, "
                      f"test_loss {last[b]['test_loss']:.6f}")
            for key in ("loss", "test_loss"):
                a, b = (last[backend][key] for backend in BACKENDS)
                rel = abs(a - b) / max(abs(a), abs(b))
                failed += rel > TOLERANCE
                print(f"  {name:<8} final {key} torch vs tensorflow: relative difference "
                      f"{rel:.1e} (<= {TOLERANCE:g}: {'PASS' if rel <= TOLERANCE else 'FAIL'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
