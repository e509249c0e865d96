"""The torch GPU paths, measured on a CUDA machine (TensorFlow's are not run here:
the GPU machines this project is lent carry PyTorch only).

    CROSSLOOP_DATA=... python acceptance/gpu.py --out DIR

1. float64 parity of the torch backend on the GPU against the torch backend on
   the CPU, 20 steps each of lenet5 (Adam), resnet20 (SGD with momentum and
   weight decay, running statistics compared) and tiny-gpt (AdamW, clipping):
   the GPU kernels compute the same training to float64 rounding (TF32 off).
2. float32 training on the GPU through ``crossloop train``: lenet5 and resnet20,
   one epoch of MNIST each, with test accuracy and time.
3. DistributedDataParallel over NCCL: ``torchrun --nproc_per_node 1 -m crossloop
   train`` (the data-parallel backend, NCCL) against the same run without torchrun,
   float64, for lenet5 and for resnet20 with ``--sync-batchnorm`` (torch's
   SyncBatchNorm): the final weights and running statistics of the two runs agree.

Prints one line per check and exits 1 unless every comparison is within 1e-10.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from crossloop import checkpoint, get_backend, nn, optim
from crossloop.data import Batches, load_dataset
from crossloop.parity import run_parity

TOLERANCE = 1e-10


def parity_gpu_vs_cpu() -> bool:
    """Check 1: each model's 20 float64 steps on the GPU and on the CPU."""
    mnist = Batches.from_dataset(load_dataset("mnist"), "train", 32, seed=0, dtype="float64")
    text = load_dataset("python-stdlib", seq_len=64)
    chars = Batches(text.train_inputs, text.train_targets, 16, seed=0)
    cases = [("lenet5", nn.lenet5(), optim.Adam(1e-3), mnist),
             ("resnet20", nn.preset("resnet20"), optim.SGD(0.01, momentum=0.9, weight_decay=5e-4),
              mnist),
             ("tiny-gpt", nn.presets.tiny_gpt(num_classes=text.num_classes, input_shape=(64,)),
              optim.AdamW(1e-3, weight_decay=0.1, clip_norm=1.0), chars)]
    ok = True
    for name, spec, opt, data in cases:
        start = time.perf_counter()
        report = run_parity(spec, opt, data, steps=20, dtype="float64",
                            backends=(get_backend("torch", device="gpu"),
                                      get_backend("torch", device="cpu")))
        worst = max(report.max_diff("loss"), report.max_diff("weights"))
        ok &= worst <= TOLERANCE
        print(f"parity torch gpu vs cpu, {name}, float64, 20 steps: max loss/weight/statistic "
              f"difference {worst:.1e}, final eval logits {report.logits_diff['final']:.1e} "
              f"({time.perf_counter() - start:.1f}s)", flush=True)
    return ok


def train(out: Path, name: str, *flags: str, torchrun: bool = False) -> Path:
    """``crossloop train`` on the GPU into ``out/name`` (its output printed); the folder."""
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "-m", "crossloop", "train", "--backend", "torch", "--device", "gpu",
               "--quiet", "--no-plot", "--no-tensorboard", "--out-dir", str(folder), *flags]
    if torchrun:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", "1", "-m", *command[2:]]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if "final" in line or "writing" in line]
    print(f"{name}: exit {done.returncode}, {time.perf_counter() - start:.1f}s wall; "
          + " | ".join(lines), flush=True)
    if done.returncode:
        print(done.stderr[-3000:], flush=True)
        raise SystemExit(1)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-runs"))
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs", flush=True)
    ok = parity_gpu_vs_cpu()
    train(args.out, "lenet5-mnist-1-epoch", "--model", "lenet5", "--epochs", "1")
    train(args.out, "resnet20-mnist-1-epoch", "--model", "resnet20", "--epochs", "1")
    for case, flags in DDP_CASES.items():
        runs = [train(args.out, f"{prefix}-{case}", *flags, "--dtype", "float64", "--epochs", "1",
                      torchrun=prefix == "ddp") for prefix in ("plain", "ddp")]
        plain, ddp = (checkpoint.load(run / "checkpoints" / "last.safetensors")["model"]
                      for run in runs)
        worst = max(float(np.max(np.abs(plain[k] - ddp[k]))) for k in plain)
        ok &= worst <= TOLERANCE
        print(f"DDP over NCCL (torchrun, 1 process) vs a plain run, {case}, float64, one epoch: "
              f"max weight and running-statistic difference {worst:.1e}", flush=True)
    return 0 if ok else 1


# check 3's runs: lenet5 on MNIST; resnet20 on scikit-learn's digits with torch's
# SyncBatchNorm converted in (one process: it normalises as BatchNorm does)
DDP_CASES = {"lenet5-mnist": ("--model", "lenet5", "--lr", "0.01"),
             "resnet20-digits-sync-batchnorm": ("--model", "resnet20", "--dataset", "digits",
                                                "--sync-batchnorm")}


if __name__ == "__main__":
    sys.exit(main())
