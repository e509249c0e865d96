"""Experiments: one training run described as data, and the ``crossloop train`` command.

An :class:`Experiment` holds every setting of a run. It comes from code, from
command-line flags, or from a small TOML/JSON file (``--config run.toml``, flat
``key = value`` pairs with the field names below; flags given on the command
line override the file). :func:`run_experiment` builds the
:class:`~crossloop.loop.Trainer` with its callbacks, trains, and leaves in the
output directory:

    config.json    the settings, backend resolved and output folder left out:
                   ``--config`` it to run the same experiment again, into a new folder
    history.json   one entry per epoch (train/test loss and accuracy, lr, speed)
    tensorboard/   event files (``tensorboard --logdir runs``)
    curves.png     loss and accuracy per epoch
    checkpoints/   last.safetensors (every epoch, every --checkpoint-every steps, and
                   on Ctrl-C/SIGTERM) and best.safetensors (by --monitor)

``crossloop train --resume runs/NAME`` continues a stopped run exactly where
it stopped, from its config.json and last checkpoint; flags still override,
so ``--backend tensorflow`` continues a torch run on TensorFlow.

Every flag of ``crossloop train`` is generated from the fields, so a new
setting is one field here (plus, if it needs one, a callback in
:func:`build_callbacks`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import nn, optim
from .backend import DEVICES, Backend, BackendError, choose_backend_name, get_backend
from .callbacks import Callback, EarlyStopping, NonFiniteError, NonFiniteGuard
from .checkpoint import CheckpointCallback, CheckpointError, restore
from .data import Batches, Dataset, DatasetNotFoundError, load_dataset, load_tfds
from .data.sources import MIRRORS
from .files import atomic_write
from .loop import Interrupted, Trainer

DATA_SOURCES = ("idx", "tfds")
TEST_BATCH_SIZE = 1000  # evaluation batch: larger is faster and does not change the result


class ConfigError(ValueError):
    """An experiment setting is unknown, of the wrong type, out of range, or does not apply."""


def _option(default: Any, help: str, *, parse: type | None = None,
            choices: tuple[str, ...] | None = None, applies: tuple[str, str] | None = None) -> Any:
    """A field with what its flag needs: help, type (default: the default's), choices.

    A field whose default is None needs ``parse`` and says its default in ``help``.
    ``applies=(setting, values)``: the option means something only when
    ``setting`` is one of ``values`` (space-separated); set otherwise, it is an error.
    """
    return field(default=default, metadata={"help": help, "type": parse or type(default),
                                             "choices": choices, "applies": applies})


@dataclass(frozen=True)
class Experiment:
    """Every setting of one training run; the defaults mirror ``examples/mnist.py``."""

    # -- data
    dataset: str = _option("mnist", "data set: mnist or fashion-mnist (with --data-source tfds, "
                                    "any TFDS name with 28x28 single-channel images)")
    data_source: str = _option("idx", "where the data comes from: idx (the four IDX files) or "
                                      "tfds (tensorflow_datasets)", choices=DATA_SOURCES)
    data_dir: str | None = _option(None, "idx: folder with the four IDX files (default: "
                                         "$CROSSLOOP_DATA/<dataset>, the cache, then download); "
                                         "tfds: TFDS data_dir", parse=str)
    # -- model and optimizer
    model: str = _option("lenet5", "model preset", choices=tuple(nn.PRESETS))
    optimizer: str = _option("adam", "optimizer (torch.optim formulas on every backend)",
                             choices=tuple(optim.OPTIMIZERS))
    lr: float = _option(2e-3, "peak learning rate")
    momentum: float = _option(0.0, "SGD momentum", applies=("optimizer", "sgd"))
    nesterov: bool = _option(False, "SGD Nesterov momentum (needs --momentum)",
                             applies=("optimizer", "sgd"))
    weight_decay: float | None = _option(None, "weight decay: L2 for sgd/adam, decoupled for "
                                               "adamw (default: the optimizer's, 0 or 0.01 for "
                                               "adamw)", parse=float)
    schedule: str = _option("cosine", "learning-rate schedule over the run: constant, cosine "
                                      "(decay to 0), warmup (linear up, then linear down to 0), "
                                      "step (times --gamma every --step-size steps)",
                            choices=tuple(optim.SCHEDULES))
    warmup_steps: int = _option(0, "optimizer steps of linear warmup",
                                applies=("schedule", "cosine warmup"))
    step_size: int | None = _option(None, "optimizer steps between decays (default: one epoch)",
                                    parse=int, applies=("schedule", "step"))
    gamma: float = _option(0.1, "decay factor of each step", applies=("schedule", "step"))
    clip_norm: float | None = _option(None, "clip the global gradient norm to this (default: off)",
                                      parse=float)
    # -- the run
    epochs: int = _option(2, "epochs to train")
    batch_size: int = _option(64, "training batch size")
    backend: str | None = _option(None, "torch or tensorflow (default: $CROSSLOOP_BACKEND, "
                                        "else torch)", parse=str)
    device: str = _option("auto", "auto (a GPU if the framework sees one), cpu or gpu",
                          choices=DEVICES)
    seed: int = _option(0, "seed of the initial weights and the batch order")
    dtype: str = _option("float32", "parameter and input dtype", choices=nn.DTYPES)
    # -- output
    name: str | None = _option(None, "run name: the output goes to runs/<name> "
                                     "(default: runs/<date-time>-<backend>)", parse=str)
    out_dir: str | None = _option(None, "output folder, overriding --name (default: "
                                        "runs/<name>)", parse=str)
    quiet: bool = _option(False, "one plain line per epoch instead of a progress bar "
                                 "(the default when stderr is not a terminal)")
    tensorboard: bool = _option(True, "write TensorBoard event files to <out_dir>/tensorboard")
    plot: bool = _option(True, "draw <out_dir>/curves.png at the end (needs matplotlib)")
    # -- checkpoints and stopping
    checkpoint_every: int | None = _option(None, "also save checkpoints/last every this many "
                                                 "steps (default: every epoch only)", parse=int)
    monitor: str = _option("test_accuracy", "epoch metric that picks checkpoints/best and that "
                                            "early stopping watches",
                           choices=("test_accuracy", "test_loss", "accuracy", "loss"))
    early_stopping: int | None = _option(None, "stop after this many epochs without improvement "
                                               "of --monitor (default: off)", parse=int)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f, getattr(self, f.name)))
        self._check()

    # -- loading -------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "settings") -> Experiment:
        """An experiment from ``{field: value}``; keys may use ``-`` for ``_``."""
        return cls(**_known(values, source))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> Experiment:
        """An experiment from a TOML or JSON file, with ``overrides`` taking precedence."""
        return cls(**{**_known(load_config(path), str(path)), **_known(overrides, "overrides")})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Experiment:
        """An experiment from parsed ``crossloop train`` flags: the ``--config`` file
        first, then every flag given on the command line."""
        names = {f.name for f in fields(cls)}  # other flags of the command are not settings
        flags = {k: v for k, v in vars(args).items() if k in names}
        if args.config is None:
            return cls.from_dict(flags, source="flags")
        return cls.from_file(args.config, **flags)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- building ------------------------------------------------------------
    def optimizer_spec(self, steps_per_epoch: int) -> optim.Optimizer:
        """The optimizer with its learning-rate schedule over ``epochs * steps_per_epoch`` steps."""
        total = self.epochs * steps_per_epoch
        schedules: dict[str, Callable[[], optim.Schedule]] = {
            "constant": lambda: optim.Constant(self.lr),
            "cosine": lambda: optim.Cosine(self.lr, total, warmup_steps=self.warmup_steps),
            "warmup": lambda: optim.Warmup(self.lr, self.warmup_steps, total),
            "step": lambda: optim.Step(self.lr, self.step_size or steps_per_epoch, self.gamma),
        }
        options: dict[str, Any] = {"clip_norm": self.clip_norm}
        if self.weight_decay is not None:
            options["weight_decay"] = self.weight_decay
        if self.optimizer == "sgd":
            options.update(momentum=self.momentum, nesterov=self.nesterov)
        return optim.optimizer(self.optimizer, schedules[self.schedule](), **options)

    def resolved_backend(self) -> str:
        """The backend name this experiment runs on (flag, then $CROSSLOOP_BACKEND, then torch)."""
        return choose_backend_name(self.backend)

    def _check(self) -> None:
        for names, bad, bound in ((_POSITIVE, lambda v: v <= 0, "> 0"),
                                  (_NON_NEGATIVE, lambda v: v < 0, ">= 0")):
            for name in names:
                value = getattr(self, name)
                if value is not None and bad(value):
                    raise ConfigError(f"{name} must be {bound}, got {value}")
        for f in fields(self):
            applies = f.metadata["applies"]
            if applies and getattr(self, f.name) != f.default:
                setting, values = applies
                if getattr(self, setting) not in values.split():
                    raise ConfigError(
                        f"{f.name} applies only with {setting} {' or '.join(values.split())}, "
                        f"not {setting} {getattr(self, setting)!r}; drop it or change {setting}")
        if self.data_source == "idx" and self.dataset not in MIRRORS:
            raise ConfigError(f"dataset {self.dataset!r} is not one of {', '.join(MIRRORS)} "
                              f"(other data sets: --data-source tfds)")
        try:
            self.optimizer_spec(steps_per_epoch=1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


_POSITIVE = ("lr", "epochs", "batch_size", "gamma", "step_size", "clip_norm", "checkpoint_every",
             "early_stopping")
_NON_NEGATIVE = ("momentum", "weight_decay", "warmup_steps", "seed")


def _coerce(f: Any, value: Any) -> Any:
    """``value`` as field ``f``'s type (an int for a float is fine), or a ConfigError."""
    kind, choices = f.metadata["type"], f.metadata["choices"]
    if value is None and f.default is None:
        return None
    ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))
          or kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{f.name} must be {kind.__name__}"
                          f"{' or None' if f.default is None else ''}, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"{f.name} {value!r} is not one of {', '.join(choices)}")
    return kind(value)


def _known(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``values`` with keys normalised, or a ConfigError naming every unknown key."""
    values = {key.replace("-", "_"): value for key, value in values.items()}
    valid = [f.name for f in fields(Experiment)]
    unknown = [key for key in values if key not in valid]
    if unknown:
        raise ConfigError(f"{source}: unknown setting{'s' * (len(unknown) > 1)} "
                          f"{', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")
    return values


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The flat ``{key: value}`` table of a ``.toml`` or ``.json`` config file."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(f"{path}: a config file must end in .toml or .json")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            values = _toml().loads(text)
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a table of settings, got {type(values).__name__}")
    return values


def _toml() -> Any:
    """The TOML reader: the standard library's from Python 3.11, else the ``tomli`` package."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError("reading a .toml config needs Python 3.11+ or 'pip install tomli'; "
                              "or write the settings as .json") from None
    return tomllib


# -- running ---------------------------------------------------------------------

def load_data(exp: Experiment) -> tuple[Batches, Batches]:
    """The experiment's train and test batches, from the one seeded NumPy pipeline."""
    dataset: Dataset = (load_tfds(exp.dataset, exp.data_dir) if exp.data_source == "tfds"
                        else load_dataset(exp.dataset, exp.data_dir))
    train = Batches.from_dataset(dataset, "train", exp.batch_size, seed=exp.seed, dtype=exp.dtype)
    test = Batches.from_dataset(dataset, "test", TEST_BATCH_SIZE, dtype=exp.dtype)
    return train, test


def output_dir(exp: Experiment) -> Path:
    """Where the run writes: ``out_dir``, else ``runs/<name>``, else a new
    ``runs/<date-time>-<backend>`` (suffixed -2, -3, ... if taken)."""
    if exp.out_dir or exp.name:
        return Path(exp.out_dir or Path("runs") / exp.name)
    stem = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{exp.resolved_backend()}"
    folder, n = stem, 1
    while folder.exists():
        n += 1
        folder = stem.with_name(f"{stem.name}-{n}")
    return folder


def build_callbacks(exp: Experiment, out_dir: Path, steps_per_epoch: int) -> list[Callback]:
    """The run's callbacks, in the order they see each event: the non-finite guard,
    progress, early stopping, checkpoints, history.json, TensorBoard, the end-of-run plot."""
    from .progress import progress_callback

    mode = "max" if exp.monitor.endswith("accuracy") else "min"
    callbacks = [NonFiniteGuard(),
                 progress_callback(quiet=exp.quiet, total=steps_per_epoch, epochs=exp.epochs)]
    if exp.early_stopping:
        callbacks.append(EarlyStopping(exp.monitor, patience=exp.early_stopping, mode=mode))
    if _have("safetensors", "checkpoint"):
        callbacks.append(CheckpointCallback(out_dir / "checkpoints", every_steps=exp.checkpoint_every,
                                            monitor=exp.monitor, mode=mode))
    callbacks.append(HistoryFile(out_dir / "history.json"))
    if exp.tensorboard and _have("tensorboard", "tensorboard"):
        from .tensorboard import TensorBoard
        callbacks.append(TensorBoard(out_dir / "tensorboard"))
    if exp.plot and _have("matplotlib", "plot"):
        from .plots import PlotCurves
        title = f"{_describe(exp)}, {exp.backend}"
        callbacks.append(PlotCurves(out_dir / "curves.png", title=title))
    return callbacks


def build_trainer(exp: Experiment, steps_per_epoch: int, callbacks: Iterable[Callback] = (), *,
                  backend: Backend | None = None) -> Trainer:
    """The Trainer for ``exp``: its model preset and optimizer on its backend and device
    (or on ``backend``, already loaded)."""
    return Trainer(nn.preset(exp.model), exp.optimizer_spec(steps_per_epoch),
                   backend=backend or exp.backend, device=exp.device, dtype=exp.dtype,
                   seed=exp.seed, callbacks=callbacks, track_grad_norm=exp.tensorboard)


def run_experiment(exp: Experiment, *, resume: bool = False) -> tuple[Trainer, Path]:
    """Train ``exp`` end to end, printing what runs at the start and the result at the end;
    returns the trainer and the output folder.

    Writes config.json before training (backend resolved; name and out_dir
    left out, so rerunning it never overwrites this run) and history.json
    after every epoch. ``resume=True`` first restores the output folder's last
    checkpoint (on whichever backend ``exp`` names).
    """
    backend = get_backend(exp.backend, device=exp.device)  # a bad backend fails before the data
    train, test = load_data(exp)
    folder = output_dir(exp)
    exp = replace(exp, backend=backend.name)
    callbacks = build_callbacks(exp, folder, len(train))
    trainer = build_trainer(exp, len(train), callbacks, backend=backend)
    if resume:
        ckpt = restore(trainer, checkpoint_path(folder))
        print(f"resuming {folder} at step {trainer.step} (epoch {trainer.epoch + 1}, batch "
              f"{trainer.batch}), saved on {ckpt.meta['backend']}", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", replace(exp, name=None, out_dir=None).to_dict())
    print(f"{_describe(exp)}\n{trainer.backend}: {train.num_samples} training samples, "
          f"{len(train)} steps/epoch; writing to {folder}", flush=True)
    history = trainer.fit(train, test, epochs=exp.epochs)
    if history:
        n, seconds = len(history), sum(h["seconds"] for h in history)
        print(f"final test accuracy {history[-1]['test_accuracy']:.4f} after {n} "
              f"epoch{'s' * (n != 1)} ({seconds:.1f}s training); results in {folder}", flush=True)
    return trainer, folder


def checkpoint_path(folder: Path) -> Path:
    """The checkpoint ``--resume`` continues from: the run folder's last one."""
    path = folder / "checkpoints" / "last.safetensors"
    if not path.is_file():
        raise CheckpointError(f"nothing to resume in {folder}: no {path.relative_to(folder)} "
                              "(was the run started with checkpoints, and is this its folder?)")
    return path


def _describe(exp: Experiment) -> str:
    """One line naming the experiment: model, data, optimizer, schedule, batch, seed."""
    return (f"{exp.model} on {exp.dataset}: {exp.optimizer} lr {exp.lr:g} {exp.schedule}, "
            f"batch {exp.batch_size}, seed {exp.seed}")


def _have(module: str, extra: str) -> bool:
    """Whether an optional extra is installed; if not, say so once and go on without it."""
    from importlib.util import find_spec

    if find_spec(module) is not None:
        return True
    print(f"crossloop: {module} is not installed, skipping it (pip install 'crossloop[{extra}]', "
          f"or --no-{extra} to silence this)", file=sys.stderr)
    return False


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (a crash leaves the old file)."""
    data = (json.dumps(value, indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


class HistoryFile(Callback):
    """Keep ``history.json`` equal to the trainer's history after every epoch."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None:
        write_json(self.path, trainer.history)


# -- the `crossloop train` command -------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`Experiment` field, plus ``--config``.

    Flags default to "not given" so that a config file's values survive; the
    help shows each field's real default.
    """
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML or JSON file of settings (the keys are the flag names); "
                             "flags given here override it")
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its config.json and last "
                             "checkpoint (flags still override, e.g. --backend)")
    for f in fields(Experiment):
        meta = f.metadata
        flag = "--" + f.name.replace("_", "-")
        shown = "" if f.default is None else f" (default: {f.default})"  # else said in help
        options: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                   "help": meta["help"] + shown}
        if meta["type"] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        else:
            parser.add_argument(flag, type=meta["type"], choices=meta["choices"],
                                metavar=None if meta["choices"] else f.name.upper(), **options)


def run(args: argparse.Namespace) -> int:
    """``crossloop train``: 0 when the run finished, 2 on a bad setting, 1 without data."""
    try:
        if args.resume:
            if args.config is None:
                args.config = str(Path(args.resume) / "config.json")
            args.out_dir = args.resume
        exp = Experiment.from_args(args)
        exp = replace(exp, out_dir=str(output_dir(exp)))  # one folder, named once
        run_experiment(exp, resume=bool(args.resume))
    except (ConfigError, BackendError, CheckpointError) as exc:
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
