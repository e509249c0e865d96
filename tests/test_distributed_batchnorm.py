"""BatchNorm across data-parallel replicas: per replica by default, as both frameworks
do, or synchronised (``--sync-batchnorm``), which equals the one-process run.

resnet20 in float64 on seeded random digits, run by tests/distributed_worker.py
(each run made once per module), and the native halves of the
docs/framework-differences.md rows from examples/data_parallel_native.py. Every
process talks over loopback and is waited for, within a bounded time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_distributed import NATIVE, TIMEOUT, _launched, _worker

from crossloop import checkpoint
from crossloop.launch import Outcome, launch

# Batches of 9 (slices 5 and 4), so the weighting of unequal slices meets BatchNorm.
RESNET = ("--model", "resnet20", "--samples", "22", "--batch-size", "9", "--steps", "3")


@pytest.fixture(scope="module")
def resnet_runs(tmp_path_factory):
    """run(name, backend, *args, how=...) -> the worker's result, each run made once per
    module: ``how`` is "one" (one process), "launched" (2 ranks) or "mirrored" (2
    replicas under MirroredStrategy in one process)."""
    folder, done = tmp_path_factory.mktemp("resnet"), {}

    def run(backend: str, *args: str, how: str = "one") -> np.lib.npyio.NpzFile:
        key = (backend, how, *args)
        if key not in done:
            out = folder / f"{len(done)}.npz"
            full = (*RESNET, "--backend", backend, *args)
            done[key] = (_launched(out, *full) if how == "launched" else
                         _worker(out, *full, replicas=2 if how == "mirrored" else None))
        return done[key]
    return run


def _differences(a: np.lib.npyio.NpzFile, b: np.lib.npyio.NpzFile) -> tuple[float, float]:
    """The largest parameter and running-statistic difference over the recorded steps."""
    running = np.repeat(["running_" in name for name in a["names"]], a["sizes"])
    assert running.any() and len(a["params"]) == 3
    difference = np.abs(a["params"] - b["params"])
    return float(difference[:, ~running].max()), float(difference[:, running].max())


@pytest.mark.parametrize("backend, how", [("torch", "launched"), ("tensorflow", "mirrored"),
                                          ("tensorflow", "launched")],
                         ids=["torch-ddp", "tf-mirrored", "tf-multiworker"])
def test_sync_batchnorm_two_replicas_equal_one_process_in_float64(resnet_runs, backend, how):
    one = resnet_runs(backend)
    two = resnet_runs(backend, "--sync-batchnorm", how=how)
    params, stats = _differences(one, two)
    assert params <= 1e-10 and stats <= 1e-10, (params, stats)


def test_without_sync_batchnorm_replicas_normalise_their_own_slices(resnet_runs):
    """Without synchronisation each replica normalises its slice with the slice's own
    statistics, and the model keeps replica 0's running statistics (torch: DDP
    broadcasts rank 0's buffers; TensorFlow: the first replica's copy is read): two
    replicas part from one process, and do so identically on both backends."""
    torch_two = resnet_runs("torch", how="launched")
    params, stats = _differences(resnet_runs("torch"), torch_two)
    assert params > 1e-5 and stats > 1e-3, (params, stats)
    params, stats = _differences(torch_two, resnet_runs("tensorflow", how="mirrored"))
    assert params <= 1e-10 and stats <= 1e-10, (params, stats)


@pytest.fixture(scope="module")
def native_batchnorm(tmp_path_factory) -> dict:
    """The native BatchNorm halves of examples/data_parallel_native.py: torch DDP (2 ranks)
    and Keras under MirroredStrategy (two logical CPUs)."""
    folder = tmp_path_factory.mktemp("native")
    out = folder / "torch.json"
    assert launch([sys.executable, NATIVE, "torch-batchnorm", str(out)], 2,
                  timeout=TIMEOUT) == Outcome(0)
    results = {"torch": json.loads(out.read_text())}
    out = folder / "tensorflow.json"
    subprocess.run([sys.executable, NATIVE, "tensorflow-batchnorm", str(out)], check=True,
                   timeout=TIMEOUT)
    return {**results, "tensorflow": json.loads(out.read_text())}


def test_batchnorm_under_data_parallelism_is_per_replica_by_default(native_batchnorm):
    """Slices [1, 2] and [3, 6] of one batch (mean 3): torch's BatchNorm under DDP and
    Keras's BatchNormalization under MirroredStrategy each take a replica's own slice
    mean (1.5 on replica 0, 4.5 on replica 1) into the running mean, not 3; Keras
    reads back replica 0's. crossloop's half: the two tests above."""
    assert native_batchnorm["torch"]["running_means"] == pytest.approx([0.15, 0.45])
    assert native_batchnorm["tensorflow"]["per_replica"] == pytest.approx(0.15)


def test_sync_batchnorm_torch_is_gpu_only_keras_synchronized_runs_on_cpu(native_batchnorm):
    """torch's SyncBatchNorm refuses CPU tensors, and DDP refuses a CPU module holding
    one; Keras's synchronized=True runs on two logical CPUs and takes the global mean.
    crossloop's half (GlooSyncBatchNorm on CPU, synchronized BatchNorm in TensorFlow):
    test_sync_batchnorm_two_replicas_equal_one_process_in_float64."""
    torch_errors = native_batchnorm["torch"]["errors"]
    assert len(torch_errors) == 2
    assert "expected input tensor to be on GPU" in torch_errors[0]
    assert "only work with GPU modules" in torch_errors[1]
    assert native_batchnorm["tensorflow"]["synchronized"] == pytest.approx(0.3)


BN_MODEL = ("import math\n"
            "from crossloop import nn\n"
            "def model(input_shape, num_classes):\n"
            "    return nn.Sequential((nn.Flatten(), nn.Linear(math.prod(input_shape), 16),\n"
            "                          nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, num_classes)),\n"
            "                         input_shape=input_shape)\n")


@pytest.mark.parametrize("backend, parallel", [("torch", ("--nproc", "2")),
                                               ("tensorflow", ("--replicas", "2"))])
def test_train_sync_batchnorm_equals_one_process(tmp_path, backend, parallel):
    """``crossloop train --sync-batchnorm`` reaches the data-parallel backend: an MLP
    with BatchNorm1d on digits (last batch uneven) trains as one process does. (SGD:
    the bias before a BatchNorm has a zero gradient up to rounding, which Adam would
    scale up to whole steps, 1e-10 apart after an epoch.)"""
    (tmp_path / "bn_model.py").write_text(BN_MODEL)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "TF_CONFIG")}
    settings = ["--backend", backend, "--dataset", "digits", "--model", "bn_model:model",
                "--epochs", "1", "--dtype", "float64", "--quiet", "--no-plot",
                "--no-tensorboard", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"]
    runs = {}
    for name, extra in (("one", ()), ("two", (*parallel, "--sync-batchnorm"))):
        done = subprocess.run([sys.executable, "-m", "crossloop", "train", *settings, *extra,
                               "--out-dir", str(tmp_path / name)], env=env, timeout=TIMEOUT,
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        runs[name] = checkpoint.load(tmp_path / name / "checkpoints" / "last.safetensors")["model"]
    assert any("running_var" in k for k in runs["one"])
    assert max(np.abs(runs["one"][k] - runs["two"][k]).max() for k in runs["one"]) <= 1e-10
