"""Data-parallel training: N replicas on a global batch compute the one-process run.

The multi-process tests start their processes with ``crossloop.launch`` over
loopback, bound their run time and leave no process behind (``launch`` waits
for every one it started). float64 on CPU, lenet5, a data size whose last batch
does not split evenly, so the weighting of unequal slices is tested too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crossloop import checkpoint
from crossloop.backend import BackendError
from crossloop.distributed import World, agreed_signal, loss_share, loss_weight, part, signal_flags
from crossloop.launch import Outcome, launch, rank_environments

WORKER = str(Path(__file__).with_name("distributed_worker.py"))
TIMEOUT = 240


def _worker(out: Path, *args: str, replicas: int | None = None) -> np.lib.npyio.NpzFile:
    """Run the worker alone (one process; with ``replicas``, MirroredStrategy)."""
    extra = ["--replicas", str(replicas)] if replicas else []
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "TF_CONFIG")}
    subprocess.run([sys.executable, WORKER, str(out), *args, *extra], check=True, env=env,
                   timeout=TIMEOUT)
    return np.load(out)


def _launched(out: Path, *args: str, expect: int = 0) -> np.lib.npyio.NpzFile | None:
    outcome = launch([sys.executable, WORKER, str(out), *args], 2, timeout=TIMEOUT)
    assert outcome == Outcome(expect), outcome.describe()
    return np.load(out) if expect == 0 else None


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and len(a) > 0
    return float(np.abs(a - b).max())


# -- the parts of a global batch ---------------------------------------------------
@pytest.mark.parametrize("n, replicas", [(64, 2), (9, 2), (10, 3), (3, 3)])
def test_parts_cover_the_batch_in_order_weights_average_and_shares_sum_to_one(n, replicas):
    parts = [part(n, r, replicas) for r in range(replicas)]
    assert [i for p in parts for i in range(n)[p]] == list(range(n))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    weights = [loss_weight(s, n, replicas) for s in sizes]
    assert np.isclose(np.mean(weights), 1.0)
    shares = [loss_share(s, n) for s in sizes]  # TensorFlow sums the replicas' gradients
    assert np.isclose(sum(shares), 1.0)


def test_a_replica_without_a_sample_is_refused():
    with pytest.raises(ValueError, match="cannot be split over 4 replicas"):
        part(3, 0, 4)


def test_world_from_env(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert World.from_env() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert World.from_env() == World(1, 2)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(BackendError, match="not in 0..1"):
        World.from_env()


# -- the launcher --------------------------------------------------------------------
def test_rank_environments_are_loopback_and_distinct():
    envs = rank_environments(2, {})
    assert [e["RANK"] for e in envs] == ["0", "1"]
    assert {e["MASTER_ADDR"] for e in envs} == {"127.0.0.1"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1
    assert envs[0]["TF_CONFIG"] != envs[1]["TF_CONFIG"] and "127.0.0.1:" in envs[0]["TF_CONFIG"]


def test_a_failing_rank_is_named_and_the_others_are_stopped(tmp_path):
    script = ("import os, sys, time\n"
              "if os.environ['RANK'] == '1': sys.exit(3)\n"
              "time.sleep(120)\n")
    outcome = launch([sys.executable, "-c", script], 2, timeout=60)
    assert outcome == Outcome(3, failed=1)
    assert outcome.describe() == "rank 1 exited with code 3; the other ranks were stopped"


# -- the contract: N replicas == one process -----------------------------------------
def test_torch_ddp_two_processes_equal_one_process_in_float64(tmp_path):
    args = ("--backend", "torch", "--samples", "73", "--batch-size", "32", "--steps", "3")
    one = _worker(tmp_path / "one.npz", *args)
    two = _launched(tmp_path / "two.npz", *args)  # batches of 32, 32 and 9 (5 + 4)
    assert len(one["params"]) == 3
    assert _max_difference(one["params"], two["params"]) <= 1e-10
    _assert_same_history(one, two)


def test_torch_ddp_regression_metrics_sum_over_the_ranks(tmp_path):
    """The absolute-error sums behind MAE are added over the ranks like the loss's."""
    args = ("--backend", "torch", "--samples", "73", "--batch-size", "32", "--steps", "1",
            "--regression")
    one = _worker(tmp_path / "one.npz", *args)
    two = _launched(tmp_path / "two.npz", *args)
    assert "mae" in json.loads(str(one["history"]))[0]
    _assert_same_history(one, two)


def test_tensorflow_mirrored_two_cpu_devices_equal_one_device_in_float64(tmp_path):
    args = ("--backend", "tensorflow", "--samples", "73", "--batch-size", "32", "--steps", "3")
    one = _worker(tmp_path / "one.npz", *args)
    two = _worker(tmp_path / "two.npz", *args, replicas=2)
    assert _max_difference(one["params"], two["params"]) <= 1e-10


@pytest.mark.parametrize("stopped, resumed", [(2, 1), (1, 2)])
def test_a_run_stopped_by_sigterm_resumes_with_another_number_of_processes(tmp_path, stopped,
                                                                         resumed):
    args = ("--backend", "torch", "--samples", "73", "--batch-size", "32", "--steps", "0",
            "--epochs", "2")
    last = str(tmp_path / "ckpt" / "last.safetensors")
    runs = {1: _worker, 2: lambda out, *a: _launched(out, *a, expect=0)}
    whole = _worker(tmp_path / "whole.npz", *args)
    stop = ("--stop-at", "2", "--checkpoint", str(tmp_path / "ckpt"))
    if stopped == 2:
        _launched(tmp_path / "stopped.npz", *args, *stop, expect=143)
    else:
        with pytest.raises(subprocess.CalledProcessError) as stop_code:
            _worker(tmp_path / "stopped.npz", *args, *stop)
        assert stop_code.value.returncode == 143
    done = runs[resumed](tmp_path / "resumed.npz", *args, "--resume", last)
    assert _max_difference(whole["final"], done["final"]) <= 1e-10
    _assert_same_history(whole, done)


def _assert_same_history(a: np.lib.npyio.NpzFile, b: np.lib.npyio.NpzFile) -> None:
    """The epochs' metrics agree: summed over the replicas as one process sums them."""
    first, second = json.loads(str(a["history"])), json.loads(str(b["history"]))
    assert len(first) == len(second) > 0
    for x, y in zip(first, second):
        assert set(x) == set(y)
        for key in set(x) - {"seconds", "samples_per_second"}:  # every metric, lr, epoch
            np.testing.assert_allclose(x[key], y[key], rtol=0, atol=1e-10, err_msg=key)


def test_train_nproc_2_prints_and_writes_once_and_equals_one_process(tmp_path):
    """crossloop train --nproc 2 end to end: rank 0 alone prints and writes the run
    folder, and the run is the one-process run."""
    settings = ["--dataset", "digits", "--model", "mlp", "--epochs", "1", "--dtype", "float64",
                "--quiet", "--no-plot", "--no-tensorboard", "--lr", "0.01"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "TF_CONFIG")}
    runs = {}
    for nproc in (1, 2):
        folder = tmp_path / f"n{nproc}"
        done = subprocess.run([sys.executable, "-m", "crossloop", "train", "--nproc", str(nproc),
                               *settings, "--out-dir", str(folder)], env=env, timeout=TIMEOUT,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("writing to") == 1 and done.stdout.count("final test") == 1
        runs[nproc] = folder
    one, two = (checkpoint.load(runs[n] / "checkpoints" / "last.safetensors") for n in (1, 2))
    assert max(np.abs(one["model"][k] - two["model"][k]).max() for k in one["model"]) <= 1e-10
    first, second = (json.loads((runs[n] / "history.json").read_text()) for n in (1, 2))
    assert abs(first[-1]["loss"] - second[-1]["loss"]) <= 1e-10
    assert first[-1]["test_accuracy"] == second[-1]["test_accuracy"]


# -- docs/framework-differences.md: how each engine combines the replicas' gradients --
NATIVE = str(Path(__file__).resolve().parents[1] / "examples" / "data_parallel_native.py")


def test_data_parallel_loss_scaling_ddp_averages_and_tf_distribute_sums(tmp_path):
    """The native halves (w = 0, loss mean((w x - 1)^2), a sample's gradient -2x):
    torch DDP averages the ranks' gradients, so unequal slices [1, 2] and [3] give
    -4.5, not the global batch's -4; Keras under MirroredStrategy sums them, so each
    replica keeping its own mean moves w by 10, twice the single-device step of 5.
    crossloop's side -- weights by each slice's share, equal to one process -- is
    the equality tests above (with an uneven last batch)."""
    out = tmp_path / "torch.json"
    assert launch([sys.executable, NATIVE, "torch", str(out)], 2, timeout=TIMEOUT) == Outcome(0)
    assert json.loads(out.read_text()) == pytest.approx(-4.5)
    out = tmp_path / "tensorflow.json"
    subprocess.run([sys.executable, NATIVE, "tensorflow", str(out)], check=True, timeout=TIMEOUT)
    assert json.loads(out.read_text()) == pytest.approx(10.0)


@pytest.mark.parametrize("received, agreed", [([None, None], None), ([None, "SIGINT"], "SIGINT"),
                                              (["SIGINT", "SIGTERM"], "SIGTERM")])
def test_ranks_agree_on_the_strongest_signal_any_of_them_received(received, agreed):
    sums = np.sum([signal_flags(name) for name in received], axis=0)
    assert agreed_signal(sums) == agreed


def test_train_nproc_names_the_failing_rank_with_its_message_and_code(tmp_path):
    """Rank 1's model function returns no model: rank 1 prints its one-line error and
    exits 2; the launcher names it and stops rank 0 (waiting for it in DDP)."""
    (tmp_path / "rank_model.py").write_text(
        "import os\n"
        "from crossloop import nn\n"
        "def model(input_shape, num_classes):\n"
        "    if os.environ['RANK'] == '1':\n"
        "        return 'not a model'\n"
        "    return nn.mlp(num_classes=num_classes, input_shape=input_shape)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "TF_CONFIG")}
    done = subprocess.run([sys.executable, "-m", "crossloop", "train", "--nproc", "2",
                           "--dataset", "digits", "--model", "rank_model:model", "--out-dir",
                           str(tmp_path / "run")], env=env, timeout=TIMEOUT, capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "crossloop train: error: " in done.stderr and "rank_model" in done.stderr
    assert done.stderr.splitlines()[-1] == ("crossloop train: error: rank 1 exited with code 2; "
                                            "the other ranks were stopped")


def test_data_parallel_torch_needs_a_world(monkeypatch):
    pytest.importorskip("torch")
    from crossloop_torch.distributed import DataParallelBackend

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(BackendError, match="crossloop train --nproc N or torchrun"):
        DataParallelBackend(device="cpu")


def test_a_backend_without_a_distributed_module_is_named(tmp_path, monkeypatch):
    from importlib import metadata

    from crossloop import registry
    from crossloop.distributed import get_data_parallel_backend

    package = tmp_path / "single_only"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "backend.py").write_text("class Backend:\n"
                                        "    def __init__(self, device='auto'):\n"
                                        "        self.device = 'cpu'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = metadata.EntryPoint("single", "single_only.backend:Backend", "crossloop.backends")
    monkeypatch.setattr(registry, "_entry_points", lambda: {"single": entry})
    with pytest.raises(BackendError, match="'single' offers no data-parallel training"):
        get_data_parallel_backend("single")



# -- crossloop train --replicas N: MirroredStrategy in one process ----------------------
TRAIN_SETTINGS = ["--dataset", "digits", "--model", "mlp", "--epochs", "1", "--dtype", "float64",
                  "--quiet", "--no-plot", "--no-tensorboard", "--lr", "0.01"]


def test_train_replicas_2_equals_one_replica_on_tensorflow(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "TF_CONFIG")}
    runs = {}
    for replicas in ([], ["--replicas", "2"]):
        folder = tmp_path / f"r{len(replicas)}"
        done = subprocess.run([sys.executable, "-m", "crossloop", "train", "--backend",
                               "tensorflow", *replicas, *TRAIN_SETTINGS, "--out-dir", str(folder)],
                              env=env, timeout=TIMEOUT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        runs[len(replicas)] = checkpoint.load(folder / "checkpoints" / "last.safetensors")
    assert "MirroredStrategy over 2 replicas" in done.stdout
    one, two = runs[0]["model"], runs[2]["model"]
    assert max(np.abs(one[k] - two[k]).max() for k in one) <= 1e-10


@pytest.mark.parametrize("flags, message", [
    (["--backend", "torch", "--replicas", "2"], "only the tensorflow backend does "
     "(MirroredStrategy); the torch backend runs one replica per process: use --nproc 2"),
    (["--backend", "tensorflow", "--replicas", "2", "--nproc", "2"],
     "--replicas and --nproc both choose the replicas"),
    (["--backend", "tensorflow", "--replicas", "1"], "must be >= 2 (one replica is a plain run)"),
])
def test_train_replicas_refuses_what_cannot_run(tmp_path, capsys, flags, message):
    from crossloop import commands

    try:
        code = commands.main(["train", *flags, *TRAIN_SETTINGS, "--out-dir", str(tmp_path / "r")])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
