"""``crossloop train``: train a model from flags or a TOML/JSON config.

``crossloop train --resume runs/NAME`` continues a stopped run exactly where
it stopped, from its config.json and last checkpoint; flags still override,
so ``--backend tensorflow`` continues a torch run on TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..backend import BackendError
from ..callbacks import NonFiniteError
from ..checkpoint import CheckpointError
from ..data import DataError, DatasetNotFoundError
from ..experiment import ConfigError
from ..resolve import ResolveError
from ..runner import output_dir, run_experiment
from ..trainer import Interrupted
from . import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume`` and every experiment setting."""
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its config.json and last "
                             "checkpoint (flags still override, e.g. --backend)")
    options.add_settings(parser)


def run(args: argparse.Namespace) -> int:
    """0 when the run finished, 2 on a bad setting, 1 without data."""
    try:
        if args.resume:
            if args.config is None:
                args.config = str(Path(args.resume) / "config.json")
            args.out_dir = args.resume
        exp = options.settings(args)
        exp = replace(exp, out_dir=str(output_dir(exp)))  # one folder, named once
        run_experiment(exp, resume=bool(args.resume))
    except (ConfigError, BackendError, CheckpointError, ResolveError, DataError) as exc:
        print(f"crossloop train: error: {exc}", file=sys.stderr)
        return 2
    except (DatasetNotFoundError, NonFiniteError) as exc:
        print(f"crossloop train: error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as stop:
        folder = exp.out_dir
        print(f"crossloop train: stopped by {stop.signal_name} at step {stop.step}; the last "
              f"checkpoint is in {folder}/checkpoints. Continue with: "
              f"crossloop train --resume {folder}", file=sys.stderr)
        return 130 if stop.signal_name == "SIGINT" else 143
    return 0
