"""Native models in crossloop's loop, killed and resumed: a torch ResNet and its Keras
port each train one MNIST epoch with crossloop.Trainer (native optimizer, native
loss), checkpointing every 50 steps; a second run of each is killed with SIGKILL
mid-epoch, resumed from its last checkpoint in a fresh process, and must end with
bitwise the same weights, optimizer state and loss as the run that was never stopped.

    CROSSLOOP_DATA=/path/to/data python acceptance/native_resume.py [--frameworks torch,keras]

Exits 1 unless every framework resumes bitwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import crossloop
from crossloop import checkpoint
from crossloop.callbacks import CheckpointCallback
from crossloop.data import Batches, load_dataset

sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "porting"))

EVERY, KILL_AT, BATCH = 50, 275, 128


class KillAt(crossloop.Callback):
    """SIGKILL this process after step ``step``: a crash, no chance to save."""

    def __init__(self, step: int):
        self.step = step

    def on_batch_end(self, trainer) -> None:
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def parts(framework: str):
    """(model, native optimizer, native loss), built the same way in every process."""
    if framework == "torch":
        import torch
        torch.set_num_threads(1)
        from resnet import torch_resnet
        model = torch_resnet("float32", size=28)
        return model, torch.optim.Adam(model.parameters(), 1e-3), torch.nn.CrossEntropyLoss()
    import keras
    from resnet import keras_resnet
    model = keras_resnet("float32", size=28)
    return (model, keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def child(framework: str, folder: Path, mode: str) -> None:
    """One process: ``straight`` (the whole epoch), ``killed`` (dies at KILL_AT) or
    ``resume`` (from folder/last.safetensors to the epoch's end)."""
    train = Batches.from_dataset(load_dataset("mnist"), "train", BATCH, seed=0)
    model, opt, loss = parts(framework)
    callbacks = [CheckpointCallback(folder, every_steps=EVERY)]
    if mode == "killed":
        callbacks.append(KillAt(KILL_AT))
    trainer = crossloop.Trainer(model, opt, loss=loss, callbacks=callbacks, seed=0)
    if mode == "resume":
        checkpoint.restore(trainer, folder / "last.safetensors")
        print(json.dumps({"resumed_at": trainer.step}), flush=True)
    started = time.perf_counter()
    logs = trainer.fit(train, epochs=1)[-1]
    print(json.dumps({"step": trainer.step, "loss": logs["loss"], "accuracy": logs["accuracy"],
                      "seconds": time.perf_counter() - started}), flush=True)


def run(framework: str, folder: Path, mode: str) -> tuple[int, list[dict]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KERAS_BACKEND": "tensorflow",
           "TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, __file__, "--child", framework, str(folder), mode],
                          env=env, capture_output=True, text=True)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode not in (0, -signal.SIGKILL):
        sys.exit(f"{framework} {mode} failed:\n{done.stderr[-3000:]}")
    return done.returncode, lines


def check(framework: str, root: Path) -> bool:
    straight, killed = root / f"{framework}-straight", root / f"{framework}-killed"
    _, ref = run(framework, straight, "straight")
    code, _ = run(framework, killed, "killed")
    saved = checkpoint.load(killed / "last.safetensors")
    _, resumed = run(framework, killed, "resume")
    a, b = checkpoint.load(straight / "last.safetensors"), checkpoint.load(killed / "last.safetensors")
    same = {section: all(np.array_equal(a[section][k], b[section][k]) and
                         a[section][k].dtype == b[section][k].dtype for k in a[section])
            and set(a[section]) == set(b[section]) for section in ("model", "optimizer")}
    same["loss"] = a["history"][-1]["loss"] == b["history"][-1]["loss"]
    ok = code == -signal.SIGKILL and all(same.values())
    print(f"{framework}: one epoch of {ref[-1]['step']} steps, straight loss "
          f"{ref[-1]['loss']:.6f} acc {ref[-1]['accuracy']:.4f} ({ref[-1]['seconds']:.0f}s); killed "
          f"(SIGKILL, exit {code}) at step {KILL_AT}, last checkpoint step {saved['step']}, "
          f"resumed at {resumed[0]['resumed_at']} to step {resumed[-1]['step']}, loss "
          f"{resumed[-1]['loss']:.6f}; {len(a['model'])} model + {len(a['optimizer'])} optimizer "
          f"tensors bitwise equal: {same['model'] and same['optimizer']}, epoch loss equal: "
          f"{same['loss']} -> {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "FOLDER", "MODE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        results = [check(name, Path(tmp)) for name in args.frameworks.split(",")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
