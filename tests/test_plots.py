"""Tests for crossloop.plots: curves PNGs and the ``crossloop compare`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

from crossloop import commands  # noqa: E402
from crossloop.plots import plot_runs, read_run  # noqa: E402


def make_run(folder: Path, backend: str, losses: list[float]) -> Path:
    """A run folder as `crossloop train` leaves it: config.json and history.json."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"backend": backend, "model": "mlp"}))
    history = [{"epoch": e, "loss": loss, "accuracy": 1 - loss, "test_loss": loss * 1.1,
                "test_accuracy": 1 - loss * 1.1} for e, loss in enumerate(losses, 1)]
    (folder / "history.json").write_text(json.dumps(history))
    return folder


def legend(fig, panel: int) -> list[str]:
    return [t.get_text() for t in fig.axes[panel].get_legend().get_texts()]


def test_plot_runs_draws_train_and_test_per_run(tmp_path):
    runs = [read_run(make_run(tmp_path / "a", "torch", [0.5, 0.3, 0.2])),
            read_run(make_run(tmp_path / "b", "tensorflow", [0.5, 0.3, 0.2]))]
    fig = plot_runs(runs, tmp_path / "curves.png", title="two backends")
    for panel, key in ((0, "loss"), (1, "accuracy")):
        assert legend(fig, panel) == ["a (torch) train", "a (torch) test",
                                      "b (tensorflow) train", "b (tensorflow) test"]
        lines = fig.axes[panel].get_lines()
        assert list(lines[0].get_ydata()) == [h[key] for h in runs[0][1]]
        assert list(lines[1].get_ydata()) == [h[f"test_{key}"] for h in runs[0][1]]
    height, width, _ = imread(tmp_path / "curves.png").shape
    assert width > height > 100


def test_run_label_does_not_repeat_a_backend_in_the_name(tmp_path):
    label, _ = read_run(make_run(tmp_path / "20250101-120000-torch", "torch", [0.4]))
    assert label == "20250101-120000-torch"


def test_compare_command_writes_one_figure(tmp_path, capsys):
    a = make_run(tmp_path / "a", "torch", [0.5, 0.3])
    b = make_run(tmp_path / "b", "tensorflow", [0.5, 0.31])
    out = tmp_path / "cmp.png"
    assert commands.main(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert imread(out).ndim == 3
    assert str(out) in capsys.readouterr().out


def test_compare_needs_two_runs_that_exist(tmp_path, capsys):
    a = make_run(tmp_path / "a", "torch", [0.5])
    assert commands.main(["compare", str(a), "--out", str(tmp_path / "x.png")]) == 2
    assert "two or more runs" in capsys.readouterr().err
    assert commands.main(["compare", str(a), str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "history.json" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("damage, words", [
    (lambda run: (run / "history.json").write_text("[bad"), "history.json cannot be read"),
    (lambda run: (run / "history.json").write_text('{"x": 1}'), "is not a list of epochs"),
    (lambda run: (run / "history.json").unlink(), "stopped before its first epoch ended"),
])
def test_compare_names_a_damaged_run_and_the_fix(tmp_path, capsys, damage, words):
    a = make_run(tmp_path / "a", "torch", [0.5])
    damage(b := make_run(tmp_path / "b", "torch", [0.5]))
    assert commands.main(["compare", str(a), str(b), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_compare_refuses_a_file_as_a_run_and_a_figure_it_cannot_write(tmp_path, capsys):
    a = make_run(tmp_path / "a", "torch", [0.5])
    (tmp_path / "afile").write_text("mine")
    assert commands.main(["compare", str(a), str(tmp_path / "afile")]) == 2
    assert "afile is not a folder" in capsys.readouterr().err
    for out, words in (("cmp.txt", "does not end in .png"), ("afile/x.png", "is a file, not a folder")):
        with pytest.raises(SystemExit) as exit_:
            commands.main(["compare", str(a), str(a), "--out", str(tmp_path / out)])
        assert exit_.value.code == 2 and words in capsys.readouterr().err
    assert commands.main(["compare", str(a), str(a), "--out", str(tmp_path / "new" / "c.pdf")]) == 0
    assert (tmp_path / "new" / "c.pdf").stat().st_size > 1000
