"""A run folder belongs to one run: locked while it runs, never silently replaced,
branched on resume into another folder, cleaned of killed writes' temporaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import write_mnist
from crossloop import commands
from crossloop.run_folder import LOCK, RunFolder, RunFolderError


def run_args(data, out, *extra):
    return ["train", "--data-dir", str(data), "--model", "mlp", "--epochs", "1",
            "--batch-size", "32", "--backend", "torch", "--device", "cpu", "--no-plot",
            "--no-tensorboard", "--quiet", "--out-dir", str(out), *extra]


def test_lock_names_the_holder_and_is_released(tmp_path):
    folder = RunFolder(tmp_path / "run").hold()
    with pytest.raises(RunFolderError, match=rf"in use by another crossloop run \(PID {os.getpid()}\)"):
        RunFolder(tmp_path / "run").hold()
    folder.release()
    assert (folder.path / LOCK).read_text() == ""  # no stale PID once released
    with RunFolder(tmp_path / "run") as again:
        assert (again.path / LOCK).read_text().strip() == str(os.getpid())


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from crossloop.run_folder import RunFolder
        held = RunFolder({str(tmp_path / "run")!r}).hold()
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunFolderError, match=f"PID {holder.pid}"):
        RunFolder(tmp_path / "run").hold()
    holder.kill()
    holder.wait(timeout=10)
    RunFolder(tmp_path / "run").hold().release()  # the kernel released it with the process


def test_two_processes_racing_for_one_folder_exactly_one_runs(tmp_path):
    data = write_mnist(tmp_path / "mnist")
    env = {**os.environ, "CROSSLOOP_CACHE": str(tmp_path / "cache")}
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        while time.time() < {time.time() + 4.0}:   # both start at the same moment
            pass
        from crossloop import commands
        sys.exit(commands.main(sys.argv[1:]))
    """))
    argv = [sys.executable, str(script), *run_args(data, tmp_path / "same", "--epochs", "3")]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    # refused while the winner holds the folder, or after, for the run it left there
    assert "is in use by another crossloop run (PID" in refused or "already holds a run" in refused
    history = json.loads((tmp_path / "same" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]  # the winner's run, whole


def test_a_finished_run_is_replaced_only_with_overwrite(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert commands.main(run_args(tiny_mnist, out)) == 0
    before = (out / "checkpoints" / "last.safetensors").read_bytes()
    assert commands.main(run_args(tiny_mnist, out, "--seed", "5")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "checkpoints" / "last.safetensors").read_bytes() == before
    assert commands.main(run_args(tiny_mnist, out, "--seed", "5", "--overwrite")) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 5


def _snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_refused_overwrite_deletes_nothing(tiny_mnist, tmp_path, capsys):
    """--overwrite replaces a run only once the new run passed every check: a model
    that does not fit, a seed out of range, or a resume that changes a setting
    unasked, leaves the folder's run as it was."""
    out, other = tmp_path / "run", tmp_path / "other"
    assert commands.main(run_args(tiny_mnist, out, "--schedule", "constant")) == 0
    assert commands.main(run_args(tiny_mnist, other, "--schedule", "constant")) == 0
    before, other_before = _snapshot(out), _snapshot(other)
    for extra in (["--model", "tiny-gpt"], ["--seed", str(2**64)], ["--loss", "mse"]):
        assert commands.main(run_args(tiny_mnist, out, "--overwrite", *extra)) == 2, extra
    assert commands.main(["train", "--resume", str(other), "--out-dir", str(out), "--overwrite",
                          "--epochs", "2", "--batch-size", "16"]) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and "seed must be <= 4294967295" in err and "batch" in err
    assert _snapshot(out) == before and _snapshot(other) == other_before


def test_a_refused_run_in_a_folder_it_found_leaves_it_as_it_was(tmp_path):
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "config.json").write_text("{}")  # a run's files, no lock file
    before = _snapshot(tmp_path / "copied")
    words = (r"--resume \S+ \(resume_from=...\), choose another --out-dir \(out_dir=...\), or "
             r"pass --overwrite \(overwrite=True\)")
    with pytest.raises(RunFolderError, match=words), RunFolder(tmp_path / "copied").hold() as f:
        f.claim(overwrite=False)
    assert sorted(p.name for p in (tmp_path / "copied").iterdir()) == ["config.json"]
    assert _snapshot(tmp_path / "copied") == before


def test_a_file_where_the_folder_should_be_is_refused(tiny_mnist, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert commands.main(run_args(tiny_mnist, out)) == 2
        assert "afile is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


def test_resume_into_another_folder_branches_and_never_writes_the_source(tiny_mnist, tmp_path,
                                                                          capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert commands.main(run_args(tiny_mnist, src, "--schedule", "constant")) == 0
    snapshot = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.rglob("*")
                if p.is_file() and p.name != LOCK}
    assert commands.main(["train", "--resume", str(src), "--out-dir", str(dst),
                          "--epochs", "2"]) == 0
    assert f"resuming from {src} into {dst} at step 4" in capsys.readouterr().out
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in snapshot} == snapshot
    assert [h["epoch"] for h in json.loads((dst / "history.json").read_text())] == [1, 2]


def test_a_killed_writes_temporaries_are_removed_on_the_next_start(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert commands.main(run_args(tiny_mnist, out, "--schedule", "constant")) == 0
    leftovers = [out / "checkpoints" / "last.safetensors.abc123.tmp", out / "history.json.x.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a write")
    assert commands.main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    assert not any(path.exists() for path in leftovers)
