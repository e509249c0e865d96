"""Tests for crossloop.callbacks.progress: a live bar on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import io
import re
import sys

import pytest

import crossloop
from conftest import SignalAt, random_digits
from crossloop import nn, optim
from crossloop.callbacks import EpochLogger
from crossloop.callbacks.progress import ProgressBar, progress_callback

EPOCHS = 2


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def train(backend, callback) -> tuple[crossloop.Trainer, list[dict[str, float]], list[int]]:
    """A tiny two-epoch fit; also returns the batch index at each metric read."""
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend=backend,
                                callbacks=[callback])
    reads, read = [], backend.metric_results
    backend.metric_results = lambda metrics: (reads.append(trainer.batch), read(metrics))[1]
    try:
        history = trainer.fit(random_digits(96), random_digits(32), epochs=EPOCHS)
    finally:
        del backend.metric_results  # back to the class's method
    return trainer, history, reads


def screens(text: str) -> list[str]:
    """Each state a terminal would have shown: the text between carriage returns and newlines."""
    return [s for s in re.split(r"[\r\n]", text) if s]


def test_choice_of_display(monkeypatch):
    assert isinstance(progress_callback(stream=FakeTTY()), ProgressBar)
    assert isinstance(progress_callback(stream=io.StringIO()), EpochLogger)  # a pipe or a file
    assert isinstance(progress_callback(quiet=True, stream=FakeTTY()), EpochLogger)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed
    assert isinstance(progress_callback(stream=FakeTTY()), EpochLogger)


def test_plain_mode_prints_one_line_per_epoch(backend, capsys):
    _, history, _ = train(backend, progress_callback(stream=io.StringIO()))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == EPOCHS
    for line, logs in zip(lines, history):
        assert line.startswith(f"[{backend.name}] epoch {logs['epoch']} |")
        assert f"test_accuracy {logs['test_accuracy']:.4f}" in line


def test_bar_renders_each_epoch_with_its_results(backend, capsys):
    stream = FakeTTY()
    batches = len(random_digits(96))
    _, history, _ = train(backend, progress_callback(total=batches, epochs=EPOCHS, stream=stream))
    assert capsys.readouterr().out == ""  # the bar replaces the plain lines
    shown = screens(stream.getvalue())
    for logs in history:
        epoch = f"epoch {logs['epoch']}/{EPOCHS}"
        assert any(s.startswith(f"{epoch}:   0%") and f" 0/{batches}" in s for s in shown)
        final = [s for s in shown if s.startswith(f"{epoch}: 100%")]
        assert final, stream.getvalue()
        assert f"{batches}/{batches}" in final[-1]
        assert (f"loss {logs['loss']:.4f} acc {logs['accuracy']:.4f} "
                f"{logs['samples_per_second']:,.0f} samples/s]") in final[-1]
        test_line = f"{epoch} test: loss {logs['test_loss']:.4f} acc {logs['test_accuracy']:.4f}"
        assert f"{final[-1]}\n{test_line}\n" in stream.getvalue()  # the closed bar, then this


def test_bar_reads_device_metrics_only_when_refreshing(backend):
    """No host sync per step: with a long refresh interval the bar reads nothing
    beyond what the trainer reads itself; with none, it reads after every batch."""
    _, _, plain = train(backend, EpochLogger(io.StringIO()))
    _, _, slow = train(backend, ProgressBar(stream=FakeTTY(), refresh_seconds=3600))
    _, _, eager = train(backend, ProgressBar(stream=FakeTTY(), refresh_seconds=0))
    assert slow == plain
    batches = len(random_digits(96))
    assert len(eager) == len(plain) + EPOCHS * batches
    assert sorted(set(eager) - set(plain)) == list(range(1, batches))  # mid-epoch batch indices


def test_interrupted_bar_is_closed_and_a_resumed_epoch_starts_where_it_stopped(backend):
    stream, data, batches = FakeTTY(), random_digits(96), len(random_digits(96))
    bar = ProgressBar(batches, epochs=1, stream=stream, refresh_seconds=0)
    trainer = crossloop.Trainer(nn.mlp(hidden=8), optim.Adam(1e-3), backend=backend,
                                callbacks=[SignalAt(3), bar])
    with pytest.raises(crossloop.Interrupted):
        trainer.fit(data, epochs=1)
    shown = stream.getvalue()
    assert shown.endswith("\n")  # the bar was closed, not left half drawn
    assert f" 3/{batches} " in screens(shown)[-1]

    trainer.callbacks = [bar]
    trainer.fit(data, epochs=1)
    resumed = screens(stream.getvalue()[len(shown):])
    assert resumed[0].startswith("epoch 1/1:  50%") and f" 3/{batches} " in resumed[0]
    assert any(s.startswith("epoch 1/1: 100%") for s in resumed)
