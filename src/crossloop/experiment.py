"""Experiments: every setting of one training run, as data.

An :class:`Experiment` comes from code, from a small TOML/JSON file (flat
``key = value`` pairs with the field names below) or from command-line flags,
and is checked once, here: a bad or inapplicable setting is a
:class:`ConfigError` naming it. ``crossloop train`` and ``crossloop parity``
both describe their run with it, so a setting means the same thing, with the
same default and the same checks, in both, and a config file that trains also
runs through the parity harness.

Every flag of those commands is generated from the fields
(:mod:`crossloop.commands.options`), so a new setting is one field here (plus,
if it needs one, a callback in :func:`crossloop.runner.build_callbacks`). The
field's ``group`` says what it is about: ``data``, ``model`` (the model, the
optimizer and its schedule), ``run`` (length, batch, backend, precision) or
``output`` (what a training run writes and when it stops).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import losses, nn, optim
from .arguments import check_seed
from .config import ConfigError, coerce, known_settings, load_config
from .data import DATASETS
from .data.catalog import TEXT_DATASETS
from .data.text import TOKENS
from .data.transforms import AUGMENTATIONS
from .registry import DEVICES, choose_backend_name
from .resolve import ResolveError, check_name, dataset_key, is_reference

DATA_SOURCES = ("idx", "tfds")
MONITORS = ("test_accuracy", "test_loss", "accuracy", "loss")
_TEXT = ("dataset", " ".join(TEXT_DATASETS))  # the settings only text data sets take
GROUPS = ("data", "model", "run", "output")
# The learning rate without --lr: crossloop's 2e-3 for sgd, adam and adamw (as
# examples/mnist.py), torch's default for the optimizers added since.
DEFAULT_LR = 2e-3
_LR = {name: optim.OPTIMIZERS[name].lr for name in ("rmsprop", "adagrad", "adadelta")}


def _option(group: str, default: Any, help: str, *, parse: type | None = None,
            choices: tuple[str, ...] | None = None, applies: tuple[str, str] | None = None) -> Any:
    """A field with what its flag needs: group, help, type (default: the default's), choices.

    A field whose default is None needs ``parse`` and says its default in ``help``.
    ``applies=(setting, values)``: the option means something only when
    ``setting`` is one of ``values`` (space-separated); set otherwise, it is an error.
    """
    return field(default=default, metadata={"group": group, "help": help,
                                             "type": parse or type(default),
                                             "choices": choices, "applies": applies})


@dataclass(frozen=True)
class Experiment:
    """Every setting of one training run; the defaults mirror ``examples/mnist.py``."""

    # -- data
    dataset: str = _option(
        "data", "mnist", f"data set: {', '.join(DATASETS)}, or your own as "
        "package.module:function returning a crossloop Dataset or ((x, y), (x, y)) arrays "
        "(with --data-source tfds, any TFDS name with 28x28 single-channel images)")
    data_source: str = _option(
        "data", "idx", "where the data comes from: idx (crossloop's own readers: IDX, CIFAR-10 "
        "binary, scikit-learn, text) or tfds (tensorflow_datasets)", choices=DATA_SOURCES)
    data_dir: str | None = _option(
        "data", None, "the data set's folder (default: $CROSSLOOP_DATA/<dataset>, the cache, "
        "then download); text: a file or folder of .txt files; tfds: TFDS data_dir", parse=str)
    augment: str = _option(
        "data", "none", "seeded augmentation of the training images: none, or crop-flip (random "
        "crop with 4-pixel padding and horizontal flip, the CIFAR recipe)",
        choices=tuple(AUGMENTATIONS))
    seq_len: int = _option("data", 128, "tokens per text window", applies=_TEXT)
    tokens: str = _option("data", "char", "text tokens: char or byte", choices=TOKENS,
                          applies=_TEXT)
    # -- model and optimizer
    model: str = _option(
        "model", "lenet5", f"model: a preset ({', '.join(nn.PRESETS)}; mlp and linear fit the "
        "data's shape) or your own as package.module:function returning a crossloop.nn spec")
    recipe: bool = _option(
        "model", False, "train the preset --model as its source does: its published optimizer, "
        "learning rate, schedule, batch size and epochs (nn.RECIPES) for every setting not given")
    loss: str = _option("model", "cross_entropy", "loss: cross_entropy (class or token ids) or "
                        "mse (float targets; reports test R^2)", choices=tuple(losses.LOSSES))
    optimizer: str = _option("model", "adam", "optimizer (torch.optim formulas on every backend)",
                             choices=tuple(optim.OPTIMIZERS))
    lr: float | None = _option(
        "model", None, f"peak learning rate (default: {DEFAULT_LR:g}; torch's for rmsprop 0.01, "
        "adagrad 0.01, adadelta 1.0)", parse=float)
    momentum: float = _option("model", 0.0, "momentum (SGD's; RMSprop's, on the normalised step)",
                              applies=("optimizer", "sgd rmsprop"))
    nesterov: bool = _option("model", False, "SGD Nesterov momentum (needs --momentum)",
                             applies=("optimizer", "sgd"))
    eps: float | None = _option(
        "model", None, "the optimizer's epsilon (default: torch's: 1e-8 for adam, adamw and "
        "rmsprop (outside the sqrt), 1e-10 for adagrad, 1e-6 for adadelta)", parse=float,
        applies=("optimizer", "adam adamw rmsprop adagrad adadelta"))
    alpha: float = _option("model", 0.99, "RMSprop's smoothing of the squared gradients "
                           "(torch's alpha; Keras calls it rho, default 0.9)",
                           applies=("optimizer", "rmsprop"))
    centered: bool = _option("model", False, "centered RMSprop (divide by the gradient's "
                             "estimated variance)", applies=("optimizer", "rmsprop"))
    lr_decay: float = _option("model", 0.0, "Adagrad's learning-rate decay: "
                              "lr / (1 + (step-1) * lr_decay)", applies=("optimizer", "adagrad"))
    initial_accumulator_value: float = _option(
        "model", 0.0, "Adagrad's starting sum of squared gradients (torch's 0; Keras's 0.1)",
        applies=("optimizer", "adagrad"))
    rho: float = _option("model", 0.9, "Adadelta's smoothing of the squared gradients and "
                         "updates", applies=("optimizer", "adadelta"))
    weight_decay: float | None = _option(
        "model", None, "weight decay: decoupled for adamw, L2 (added to the gradient) for the "
        "others (default: the optimizer's, 0 or 0.01 for adamw)", parse=float)
    schedule: str = _option(
        "model", "cosine", "learning-rate schedule over the run: constant, cosine (decay to 0), "
        "warmup (linear up, then linear down to 0), step (times --gamma every --step-size steps)",
        choices=tuple(optim.SCHEDULES))
    warmup_steps: int = _option("model", 0, "optimizer steps of linear warmup",
                                applies=("schedule", "cosine warmup"))
    step_size: int | None = _option(
        "model", None, "optimizer steps between decays (default: one epoch)", parse=int,
        applies=("schedule", "step"))
    gamma: float = _option("model", 0.1, "decay factor of each step", applies=("schedule", "step"))
    clip_norm: float | None = _option(
        "model", None, "clip the global gradient norm to this (default: off)", parse=float)
    # -- the run
    epochs: int = _option("run", 2, "epochs to train")
    batch_size: int = _option("run", 64, "training batch size")
    backend: str | None = _option(
        "run", None, "torch or tensorflow (default: $CROSSLOOP_BACKEND, else torch)", parse=str)
    device: str = _option("run", "auto", "auto (a GPU if the framework sees one), cpu or gpu",
                          choices=DEVICES)
    seed: int = _option("run", 0, "seed of the initial weights and the batch order")
    dtype: str = _option("run", "float32", "parameter and input dtype", choices=nn.DTYPES)
    sync_batchnorm: bool = _option(
        "run", False, "data-parallel runs (--nproc N): BatchNorm normalises with the statistics "
        "of the whole global batch, as one process does; without it each replica uses its own "
        "slice's, as torch DDP and Keras do (one process is unaffected)")
    # -- output
    name: str | None = _option(
        "output", None, "run name: the output goes to runs/<name> (default: "
        "runs/<date-time>-<backend>)", parse=str)
    out_dir: str | None = _option(
        "output", None, "output folder, overriding --name (default: runs/<name>)", parse=str)
    quiet: bool = _option(
        "output", False, "one plain line per epoch instead of a progress bar (the default when "
        "stderr is not a terminal)")
    tensorboard: bool = _option(
        "output", True, "write TensorBoard event files to <out_dir>/tensorboard")
    plot: bool = _option("output", True, "draw <out_dir>/curves.png at the end (needs matplotlib)")
    # -- checkpoints and stopping
    checkpoint_every: int | None = _option(
        "output", None, "also save checkpoints/last every this many steps (default: every epoch "
        "only)", parse=int)
    monitor: str | None = _option(
        "output", None, "epoch metric that picks checkpoints/best and that early stopping "
        "watches (default: test_accuracy, or test_loss with a float-target loss)", parse=str,
        choices=MONITORS)
    early_stopping: int | None = _option(
        "output", None, "stop after this many epochs without improvement of --monitor "
        "(default: off)", parse=int)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, coerce(f, getattr(self, f.name)))
        object.__setattr__(self, "dataset", dataset_key(self.dataset))  # one spelling
        if self.lr is None:
            object.__setattr__(self, "lr", _LR.get(self.optimizer, DEFAULT_LR))
        self._check()

    # -- loading -------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "settings") -> Experiment:
        """An experiment from ``{field: value}``; keys may use ``-`` for ``_``. With
        ``recipe`` true, the model's recipe fills in the settings not given."""
        return cls(**_with_recipe(known_settings(values, fields(cls), source)))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> Experiment:
        """An experiment from a TOML or JSON file, with ``overrides`` taking precedence."""
        return cls(**_with_recipe({**known_settings(load_config(path), fields(cls), str(path)),
                                   **known_settings(overrides, fields(cls), "overrides")}))

    @classmethod
    def from_sources(cls, config: str | os.PathLike[str] | None,
                     flags: Mapping[str, Any]) -> Experiment:
        """An experiment from a config file (if any) with ``flags`` taking precedence;
        keys of ``flags`` that are not settings (a command's own options) are ignored."""
        names = {f.name for f in fields(cls)}
        settings = {k: v for k, v in flags.items() if k in names}
        if config is None:
            return cls.from_dict(settings, source="flags")
        return cls.from_file(config, **settings)

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
        for f in fields(self):  # the hyperparameters of this optimizer (None: its default)
            applies = f.metadata["applies"]
            if (applies and applies[0] == "optimizer" and self.optimizer in applies[1].split()
                    and getattr(self, f.name) is not None):
                options[f.name] = getattr(self, f.name)
        return optim.optimizer(self.optimizer, schedules[self.schedule](), **options)

    @property
    def monitored(self) -> str:
        """The metric ``monitor`` names, its default filled in."""
        return self.monitor or ("test_accuracy" if self.loss == "cross_entropy" else "test_loss")

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
        try:
            check_seed(self.seed)  # the bound Trainer and run_parity check, as a ConfigError
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.name is not None and (os.path.basename(self.name) != self.name
                                      or self.name in (".", "..")):
            raise ConfigError(f"name {self.name!r} is a path, not a name: the run goes to "
                              "runs/NAME; give a path with --out-dir (out_dir=...) instead")
        if self.dataset == "text" and self.data_dir is None:
            raise ConfigError("data set text reads local files: give --data-dir, a text file "
                              "or a folder of .txt files")
        for f in fields(self):
            applies = f.metadata["applies"]
            if applies and getattr(self, f.name) != f.default:
                setting, values = applies
                if getattr(self, setting) not in values.split():
                    raise ConfigError(
                        f"{f.name} applies only with {setting} {' or '.join(values.split())}, "
                        f"not {setting} {getattr(self, setting)!r}; drop it or change {setting}")
        try:
            check_name("model", self.model, nn.PRESETS)
            if self.data_source == "idx":
                check_name("dataset", self.dataset, DATASETS)
        except ResolveError as exc:
            raise ConfigError(str(exc)) from None
        if self.data_source == "tfds" and is_reference(self.dataset):
            raise ConfigError(f"dataset {self.dataset} is a function: drop --data-source tfds")
        if self.loss != "cross_entropy" and self.monitored.endswith("accuracy"):
            raise ConfigError(f"monitor {self.monitored} means nothing with loss {self.loss} "
                              "(float targets have no accuracy): use --monitor test_loss")
        try:
            with warnings.catch_warnings():  # its warnings need the run's length: runner's
                warnings.simplefilter("ignore", optim.UnlikelySettingWarning)
                self.optimizer_spec(steps_per_epoch=1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


_POSITIVE = ("lr", "epochs", "batch_size", "seq_len", "gamma", "step_size", "clip_norm", "checkpoint_every",
             "early_stopping")
_NON_NEGATIVE = ("momentum", "weight_decay", "warmup_steps", "seed")


def _with_recipe(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over the published recipe of their model when ``recipe`` is set."""
    if not values.get("recipe"):
        return values
    model = values.get("model", Experiment.model)
    if model not in nn.RECIPES:
        raise ConfigError(f"model {model!r} has no published recipe (models with one: "
                          f"{', '.join(nn.RECIPES)}); drop --recipe")
    return {**nn.RECIPES[model], **values}
