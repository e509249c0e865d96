"""Tests for crossloop.callbacks.tensorboard: event files TensorBoard's own reader reads back.

The torch run happens in a fresh interpreter so that "TensorFlow was not
imported" is a fact about that process alone, not about this test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import crossloop  # noqa: E402
from conftest import SignalAt, random_digits  # noqa: E402
from crossloop import nn, optim  # noqa: E402
from crossloop.callbacks import Callback  # noqa: E402
from crossloop.callbacks.tensorboard import TensorBoard  # noqa: E402

# 96 samples in batches of 16: 6 steps an epoch; a step write every 2 steps.
RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import crossloop
    from crossloop import nn, optim
    from crossloop.data import Batches
    from crossloop.data.transforms import MNIST
    from crossloop.callbacks.tensorboard import TensorBoard

    def tiny(n):
        rng = np.random.default_rng(n)
        return Batches(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                       rng.integers(0, 10, n), 16, transforms=MNIST)

    log_dir, backend, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend=backend,
                                device="cpu", callbacks=[TensorBoard(log_dir, every_steps=2)])
    history = trainer.fit(tiny(96), tiny(32), epochs=epochs)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
    print(json.dumps({"history": history, "tensorflow_modules": loaded}))
""")
EPOCHS, STEPS_PER_EPOCH, EVERY = 2, 6, 2


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in ``log_dir``, as read by TensorBoard's EventAccumulator."""
    reader = EventAccumulator(str(log_dir))
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)]
            for tag in reader.Tags()["scalars"]}


def check_epoch_scalars(log_dir: Path, history: list[dict[str, float]]) -> None:
    train, test = scalars(log_dir / "train"), scalars(log_dir / "test")
    epochs = [h["epoch"] for h in history]
    for key in ("loss", "accuracy", "lr", "samples_per_second", "seconds"):
        assert train[f"epoch/{key}"] == [(e, pytest.approx(h[key], rel=1e-6))
                                         for e, h in zip(epochs, history)], key
    for key in ("loss", "accuracy"):
        assert test[f"epoch/{key}"] == [(e, pytest.approx(h[f"test_{key}"], rel=1e-6))
                                        for e, h in zip(epochs, history)], key


@pytest.mark.skipif(find_spec("torch") is None, reason="needs the torch backend")
def test_torch_run_writes_events_without_importing_tensorflow(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path), "torch", str(EPOCHS)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["tensorflow_modules"] == []
    history = result["history"]
    check_epoch_scalars(tmp_path, history)

    train = scalars(tmp_path / "train")
    steps = list(range(EVERY, EPOCHS * STEPS_PER_EPOCH + 1, EVERY))
    for key in ("step/loss", "step/accuracy", "step/lr", "step/samples_per_second"):
        assert [s for s, _ in train[key]] == steps, key
    # each step/loss is the mean over its interval: equal intervals average to the epoch's loss
    per_epoch = np.reshape([v for _, v in train["step/loss"]], (EPOCHS, -1))
    assert per_epoch.mean(axis=1) == pytest.approx([h["loss"] for h in history], rel=1e-5)


class AddGradNorm(Callback):
    """Stands in for a trainer that reports a gradient norm in its epoch logs."""

    def on_epoch_end(self, trainer, logs):
        logs["grad_norm"] = 0.25 * logs["epoch"]


def test_every_backend_writes_readable_events(backend, tmp_path):
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend=backend,
                                callbacks=[AddGradNorm(), TensorBoard(tmp_path, every_steps=0)])
    history = trainer.fit(random_digits(96), random_digits(32), epochs=EPOCHS)
    check_epoch_scalars(tmp_path, history)
    train = scalars(tmp_path / "train")
    assert train["epoch/grad_norm"] == [(1, 0.25), (2, 0.5)]  # any numeric key is written
    assert not any(tag.startswith("step/") for tag in train)  # every_steps=0: per epoch only


def test_interrupted_run_leaves_readable_events_and_resumes_writing(backend, tmp_path):
    train, test = random_digits(96), random_digits(32)
    board = TensorBoard(tmp_path, every_steps=EVERY)
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend=backend,
                                callbacks=[SignalAt(3), board])
    with pytest.raises(crossloop.Interrupted):
        trainer.fit(train, test, epochs=EPOCHS)
    assert [s for s, _ in scalars(tmp_path / "train")["step/loss"]] == [2]  # closed, readable

    trainer.callbacks = [board]  # go on where it stopped, mid-epoch
    history = trainer.fit(train, test, epochs=EPOCHS)
    check_epoch_scalars(tmp_path, history)
    steps = [s for s, _ in scalars(tmp_path / "train")["step/loss"]]
    assert steps == list(range(EVERY, EPOCHS * STEPS_PER_EPOCH + 1, EVERY))


def test_every_steps_must_not_be_negative(tmp_path):
    with pytest.raises(ValueError, match="every_steps"):
        TensorBoard(tmp_path, every_steps=-1)
