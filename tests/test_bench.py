"""The benchmark (``crossloop bench`` / benchmarks/loop_overhead.py) and start-up cost.

The smoke runs use ``--quick`` on a tiny generated MNIST: they check that every
contender trains and is reported, never how fast.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossloop
from crossloop import bench
from crossloop.data import write_idx
from crossloop.data.sources import FILES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """600 random 28x28 digits (enough for --quick at batch 256), as the four IDX files."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, n in zip(FILES, (600, 600, 10, 10)):
        shape = (n, 28, 28) if "images" in name else (n,)
        write_idx(folder / name, rng.integers(0, 256 if "images" in name else 10, shape,
                                              dtype=np.uint8))
    return folder


def run_bench(tmp_path: Path, data: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    env = {**os.environ, "CROSSLOOP_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loop_overhead.py"), "--quick",
                           "--data-dir", str(data), "--output", str(out), *args],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| model | batch |" in proc.stdout  # the markdown report
    return json.loads(out.read_text())


def check_results(results: dict, contenders: list[str], configs: set[tuple[str, int]]) -> None:
    assert [r["contender"] for r in results["runs"]] == contenders
    for run in results["runs"]:
        assert "error" not in run
        assert {(c["model"], c["batch_size"]) for c in run["configs"]} == configs
        assert all(math.isfinite(c["samples_per_second"]) and c["samples_per_second"] > 0
                   for c in run["configs"])
        assert run["peak_rss_mb"] > 0
    pairs = {(r["crossloop"], r["reference"]) for r in results["ratios"]}
    expected = {(a, b) for a, b, _ in bench.RATIOS if a in contenders and b in contenders}
    assert pairs == expected
    assert len(results["ratios"]) == len(expected) * len(configs)


def test_quick_run_reports_every_contender(tmp_path: Path, tiny_mnist: Path) -> None:
    results = run_bench(tmp_path, tiny_mnist)
    check_results(results, list(bench.DEFAULT_CONTENDERS),
                  {(m, b) for m in ("conv1", "lenet5") for b in (32, 256)})
    assert {r["crossloop"] for r in results["rss_ratios"]} == {"torch-crossloop", "tf-crossloop"}
    assert results["startup"]["modules_loaded_by_import"] == []
    assert results["settings"]["reps"] == 1


@pytest.mark.slow
def test_quick_run_compiled_contenders(tmp_path: Path, tiny_mnist: Path) -> None:
    results = run_bench(tmp_path, tiny_mnist, "--models", "lenet5",
                        "--batch-sizes", "32", "--contenders", *bench.COMPILED_CONTENDERS)
    check_results(results, list(bench.COMPILED_CONTENDERS), {("lenet5", 32)})


def test_ratios_pair_runs_of_the_same_repetition() -> None:
    # rep 0: crossloop 1% slower; rep 1 (a faster moment of the machine): 5% faster.
    runs = [{"contender": name, "rep": rep, "peak_rss_mb": 100.0,
             "configs": [{"model": "conv1", "batch_size": 32, "samples_per_second": sps}]}
            for name, rep, sps in [("torch-hand", 0, 100.0), ("torch-crossloop", 0, 99.0),
                                   ("torch-hand", 1, 200.0), ("torch-crossloop", 1, 210.0)]]
    summary = bench.summarize(runs, ["torch-hand", "torch-crossloop"])
    (ratio,) = summary["ratios"]
    assert ratio["median"] == pytest.approx((0.99 + 1.05) / 2)  # not 154.5 / 150
    assert (ratio["min"], ratio["max"]) == (pytest.approx(0.99), pytest.approx(1.05))
    assert ratio["meets_target"]
    (rss,) = summary["rss_ratios"]
    assert rss["ratio"] == 1.0 and rss["meets_target"]


def test_failed_contender_is_reported_not_paired() -> None:
    runs = [{"contender": "tf-hand", "rep": 0, "peak_rss_mb": 1.0,
             "configs": [{"model": "conv1", "batch_size": 32, "samples_per_second": 1.0}]},
            {"contender": "tf-crossloop", "rep": 0, "error": "exit 1: boom"}]
    summary = bench.summarize(runs, ["tf-hand", "tf-crossloop"])
    assert summary["ratios"] == [] and list(summary["peak_rss_mb"]) == ["tf-hand"]


def test_import_crossloop_loads_no_framework_and_no_numpy() -> None:
    code = ("import sys, crossloop; "
            "print(sorted({'torch', 'tensorflow', 'keras', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_load_on_first_use() -> None:
    for name in crossloop.__all__:
        assert getattr(crossloop, name) is not None
    assert set(crossloop.__all__) <= set(dir(crossloop))
    with pytest.raises(AttributeError, match="no attribute 'Trainerr'"):
        crossloop.Trainerr  # noqa: B018


def test_disturbed_runs_are_repeated_and_the_quietest_kept(monkeypatch, capsys) -> None:
    shares = iter([0.5, 0.3, 0.4])  # every run disturbed: 1 + retries runs, keep the 0.3 one
    monkeypatch.setattr(bench, "_spawn", lambda contender, settings: {
        "contender": contender.name, "others_cpu_share": next(shares), "peak_rss_mb": 1.0,
        "configs": []})
    result = bench.measure_quietly(bench.CONTENDERS["tf-hand"], {"retries": 2}, "[rep 1/1]")
    assert result["others_cpu_share"] == 0.3
    assert capsys.readouterr().out.count("running it again") == 2
    assert next(shares, None) is None  # exactly three runs


def test_quiet_run_is_not_repeated(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(bench, "_spawn", lambda contender, settings: calls.append(1) or {
        "contender": contender.name, "others_cpu_share": 0.01, "peak_rss_mb": 1.0, "configs": []})
    bench.measure_quietly(bench.CONTENDERS["tf-hand"], {"retries": 2}, "")
    assert len(calls) == 1
