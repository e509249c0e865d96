"""Faults that really fault: a training run is SIGKILLed at 20 moments, half of them
inside a checkpoint write, and every time ``--resume`` finishes it with weights equal,
bit for bit, to an uninterrupted run's.

How a kill is known to land inside a write: the child process wraps crossloop's
atomic write so that, once a checkpoint's bytes are in the temporary file but
before the rename, it prints ``in-write <path>`` and pauses. A kill sent on that
line lands in the pause, and the proof is on disk: the temporary file is left
next to the checkpoint (which the next start removes).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from conftest import write_mnist
from crossloop import checkpoint, commands

KILLS = 20
PAUSE = 30.0        # seconds the child waits inside the one write it is told to pause in
STEP_SLEEP = 0.06   # seconds added to each training step: the 11 after the 1st write last 0.66 s

CHILD = textwrap.dedent(f"""
    import os, sys, time
    from crossloop import Callback, commands, runner, storage

    pause_at, written = int(os.environ["PAUSE_AT"]), [0]
    real_write, real_callbacks = storage.atomic_write, runner.build_callbacks

    def announced(path, write, suffix=".tmp"):
        def write_then_report(f):
            write(f)
            f.flush()
            if "checkpoints" in str(path):
                written[0] += 1
                print("in-write", written[0], path, flush=True)  # in the temp file, not renamed
                if written[0] == pause_at:
                    time.sleep({PAUSE})
        return real_write(path, write_then_report, suffix)

    class Slow(Callback):
        def on_batch_end(self, trainer):
            time.sleep({STEP_SLEEP})

    storage.atomic_write = announced
    runner.build_callbacks = lambda *args: [Slow(), *real_callbacks(*args)]
    sys.exit(commands.main(sys.argv[1:]))
""")


def train_args(data, out):
    return ["train", "--data-dir", str(data), "--model", "mlp", "--epochs", "3",
            "--batch-size", "16", "--backend", "torch", "--device", "cpu", "--no-plot",
            "--no-tensorboard", "--quiet", "--checkpoint-every", "1", "--out-dir", str(out)]


def final_weights(folder):
    return checkpoint.load(folder / "checkpoints" / "last.safetensors")["model"]


def kill(script, args, env, rng, in_write: bool) -> None:
    """Start the child and SIGKILL it: inside its n-th checkpoint write (n from 2: the
    1st has no checkpoint to resume from yet), or at a random moment after its first."""
    target = rng.randrange(2, 12) if in_write else 0
    child = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True,
                             env={**env, "PAUSE_AT": str(target)})
    for line in child.stdout:
        if not line.startswith("in-write"):
            continue
        n = int(line.split()[1])
        if (in_write and n == target) or (not in_write and n == 1):
            if not in_write:
                time.sleep(rng.uniform(0.0, 0.3))
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"the child ended by itself ({child.returncode})"


def test_sigkill_anywhere_then_resume_is_bitwise_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSLOOP_CACHE", str(tmp_path / "cache"))
    data = write_mnist(tmp_path / "mnist", train=64, test=32)   # 4 steps an epoch, 12 in all
    assert commands.main(train_args(data, tmp_path / "straight")) == 0
    expected = final_weights(tmp_path / "straight")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "CROSSLOOP_CACHE": str(tmp_path / "cache")}
    rng = random.Random(0)
    inside, matched = 0, 0
    for trial in range(KILLS):
        out = tmp_path / f"killed-{trial}"
        kill(script, train_args(data, out), env, rng, in_write=trial % 2 == 0)
        inside += bool(list((out / "checkpoints").glob("*.tmp")))
        assert commands.main(["train", "--resume", str(out)]) == 0, trial
        assert not list(out.rglob("*.tmp")), "the resumed run removed the dead write's leftovers"
        resumed = final_weights(out)
        assert list(resumed) == list(expected)
        for name in expected:
            np.testing.assert_array_equal(resumed[name], expected[name], err_msg=f"{trial} {name}")
        matched += 1
    print(f"\nSIGKILL fault test: {KILLS} kills, {inside} inside a checkpoint write "
          f"(temporary file left on disk), {matched} resumes bitwise equal to the "
          "uninterrupted run")
    assert inside >= KILLS // 2 and matched == KILLS
