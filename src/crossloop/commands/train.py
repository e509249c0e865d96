"""``crossloop train``: train a model from flags or a TOML/JSON config.

A run folder belongs to one run: a second run into a folder in use is refused
(naming the PID that holds it), and a new run never replaces a finished one's
files unless ``--overwrite``. ``--resume RUN_DIR`` continues a stopped run
exactly where it stopped, from its config.json and last checkpoint -- in place,
or with ``--out-dir DST`` in a new folder that starts as a copy (RUN_DIR is
never written). Flags still override the config, but a setting that differs
from the checkpoint's is refused unless ``--allow-change NAME`` accepts it;
``--backend`` and ``--device`` change freely (a torch run continues on
TensorFlow).

``--nproc N`` trains data-parallel in N processes on this machine (torch
DistributedDataParallel over gloo or NCCL; TensorFlow MultiWorkerMirroredStrategy),
talking over loopback only: this process starts N copies of the command as ranks
0..N-1 (:func:`crossloop.launch.launch`), waits for them, and names the first
rank that fails. The result is the single-process run's; a run stopped at N
processes resumes at any other number. Across machines, start the ranks yourself:
``torchrun --nnodes M --nproc-per-node N --rdzv-endpoint HOST:PORT -m crossloop
train ...`` (TensorFlow: the same environment plus ``TF_CONFIG``).

``--replicas N`` (TensorFlow) trains data-parallel in this one process instead,
under MirroredStrategy over N devices: GPUs, or on a CPU N logical CPU devices.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..callbacks import NonFiniteError
from ..checkpoint import CheckpointError
from ..config import ConfigError
from ..launch import launch
from ..registry import choose_backend_name
from ..resume import CHANGEABLE
from ..run_folder import CHECKPOINT
from ..runner import output_dir, run_experiment
from ..trainer import Interrupted
from . import options


def _folder_name(text: str) -> str:
    """argparse type: a folder name that is not empty (an empty one would mean '.')."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give the run folder to continue")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's own options, then every experiment setting."""
    run = parser.add_argument_group("this run")
    run.add_argument("--resume", metavar="RUN_DIR", default=None, type=_folder_name,
                     help="continue the run in RUN_DIR from its config.json and last checkpoint "
                          "(with --out-dir: in a new folder, leaving RUN_DIR untouched)")
    run.add_argument("--allow-change", metavar="NAME", action="append", default=[],
                     type=_changeable,
                     help="with --resume: accept a setting that differs from the checkpoint's "
                          f"(repeatable; one of {', '.join(CHANGEABLE)})")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the results of an earlier run in the output folder")
    run.add_argument("--nproc", metavar="N", type=options.positive_int, default=1,
                     help="train data-parallel in N processes on this machine (loopback "
                          "only); the result equals the one-process run's")
    run.add_argument("--replicas", metavar="N", default=None,
                     type=options.int_at_least(2, " (one replica is a plain run)"),
                     help="TensorFlow: train data-parallel in this process under "
                          "MirroredStrategy over N devices (GPUs, or N logical CPU devices); "
                          "the result equals the one-replica run's")
    options.add_settings(parser)


def _changeable(text: str) -> str:
    name = text.replace("-", "_")
    if name not in CHANGEABLE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a setting that may change on resume; "
                                         f"choose from {', '.join(CHANGEABLE)}")
    return name


def run(args: argparse.Namespace) -> int:
    """0 when the run finished; 1 when the non-finite guard stopped it; 130/143 on
    SIGINT/SIGTERM (after saving). Bad input raises (exit 2, one line)."""
    if args.allow_change and not args.resume:
        raise ConfigError("--allow-change applies to --resume only: a new run has nothing "
                              "to change")
    if args.resume:
        source = Path(args.resume)
        if args.config is None:
            if not (source / "config.json").is_file():
                raise CheckpointError(f"nothing to resume in {source}: no config.json (is "
                                      "this the folder of a crossloop train run?)")
            args.config = str(source / "config.json")
        if not hasattr(args, "out_dir"):
            args.out_dir = args.resume
    exp = options.settings(args)
    exp = replace(exp, out_dir=str(output_dir(exp)))  # one folder, named once
    if args.replicas is not None:
        _check_replicas(args, choose_backend_name(exp.backend))
    if args.nproc > 1:
        return _launch(args, exp.out_dir)
    try:
        run_experiment(exp, resume_from=args.resume, overwrite=args.overwrite,
                       allow_change=args.allow_change, replicas=args.replicas)
    except NonFiniteError as exc:
        last = Path(exp.out_dir) / CHECKPOINT
        saved = (f"the last checkpoint with finite weights is {last}" if last.is_file() else
                 "no checkpoint was written before it (they are saved every epoch, and every "
                 "N steps with --checkpoint-every N)")
        print(f"crossloop train: error: {exc}; {saved}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        folder = exp.out_dir
        if os.environ.get("RANK", "0") == "0":  # a data-parallel run's other ranks stay quiet
            print(f"crossloop train: stopped by {stop.signal_name} at step {stop.step}; the last "
                  f"checkpoint is in {folder}/checkpoints. Continue with: "
                  f"crossloop train --resume {folder}", file=sys.stderr)
        return 130 if stop.signal_name == "SIGINT" else 143
    return 0


def _check_replicas(args: argparse.Namespace, backend: str) -> None:
    """--replicas is MirroredStrategy in one process: TensorFlow's, and not with --nproc."""
    if backend != "tensorflow":
        raise ConfigError(f"--replicas runs several replicas in one process, which only the "
                          f"tensorflow backend does (MirroredStrategy); the {backend} backend "
                          f"runs one replica per process: use --nproc {args.replicas}")
    if args.nproc > 1:
        raise ConfigError("--replicas and --nproc both choose the replicas: use --replicas N "
                          "(N devices of one process) or --nproc N (N processes), not both")


def _launch(args: argparse.Namespace, out_dir: str) -> int:
    """Run this command as ``args.nproc`` ranks writing to ``out_dir``; their exit code."""
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc starts the processes of a data-parallel run, but this "
                          "process is already one of them (WORLD_SIZE is set)")
    argv, skip = [], False
    for arg in args.argv:  # the command as given, less --nproc
        if not skip and not arg.startswith("--nproc"):
            argv.append(arg)
        skip = arg == "--nproc"
    outcome = launch([sys.executable, "-m", "crossloop", "train", *argv, "--out-dir", out_dir],
                     args.nproc)
    if outcome.failed is not None:
        print(f"crossloop train: error: {outcome.describe()}", file=sys.stderr)
    return outcome.code if outcome.code >= 0 else 128 - outcome.code
