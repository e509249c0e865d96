"""Running an :class:`~crossloop.experiment.Experiment`: its data, its trainer with the
standard callbacks, and the files a run leaves in its output folder.

    config.json    the settings, backend resolved and output folder left out:
                   ``--config`` it to run the same experiment again, into a new folder
    history.json   one entry per epoch (train/test loss and accuracy or R^2, lr, speed)
    tensorboard/   event files (``tensorboard --logdir runs``)
    curves.png     loss and accuracy per epoch
    checkpoints/   last.safetensors (every epoch, every ``checkpoint_every`` steps,
                   and on Ctrl-C/SIGTERM) and best.safetensors (by ``monitor``)
    .crossloop.lock  held (flock) while the run runs, naming its PID; empty after

``crossloop train`` is a thin command over :func:`run_experiment`; the parity
harness takes its batches, model and optimizer from the same
:func:`~crossloop.prepare.load_data`, :func:`~crossloop.prepare.model_spec` and
:meth:`Experiment.optimizer_spec`, so both commands run one experiment.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from . import checkpoint, nn, optim
from .backend import Backend
from .callbacks import (
    Callback,
    CheckpointCallback,
    EarlyStopping,
    HistoryFile,
    NonFiniteGuard,
    PlotCurves,
    TensorBoard,
    progress_callback,
)
from .callbacks.monitor import mode_for
from .distributed import World, get_data_parallel_backend, is_chief, leaving
from .experiment import ConfigError, Experiment
from .files import write_json
from .prepare import load_data, model_spec
from .registry import get_backend
from .resume import ResumePlan, plan_resume
from .run_folder import CHECKPOINT, RunFolder
from .state import StateError
from .trainer import Trainer


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


def build_callbacks(exp: Experiment, out_dir: Path, steps_per_epoch: int, *,
                    chief: bool = True) -> list[Callback]:
    """The run's callbacks, in the order they see each event: the non-finite guard,
    progress, early stopping, checkpoints, history.json, TensorBoard, the end-of-run plot.

    A data-parallel rank other than rank 0 (``chief=False``) keeps only those that
    decide when to stop or join a collective (the checkpoints, writing nothing)."""
    mode = mode_for(exp.monitored)
    callbacks: list[Callback] = [NonFiniteGuard()]
    if chief:
        callbacks.append(progress_callback(quiet=exp.quiet, total=steps_per_epoch,
                                           epochs=exp.epochs))
    if exp.early_stopping:
        callbacks.append(EarlyStopping(exp.monitored, patience=exp.early_stopping, mode=mode))
    if _have("safetensors", "checkpoint", None):
        callbacks.append(CheckpointCallback(out_dir / "checkpoints", every_steps=exp.checkpoint_every,
                                            monitor=exp.monitored, mode=mode, write=chief))
    if not chief:
        return callbacks
    callbacks.append(HistoryFile(out_dir / "history.json"))
    if exp.tensorboard and _have("tensorboard", "tensorboard", "tensorboard"):
        callbacks.append(TensorBoard(out_dir / "tensorboard"))
    if exp.plot and _have("matplotlib", "plot", "plot"):
        callbacks.append(PlotCurves(out_dir / "curves.png", title=f"{describe(exp)}, {exp.backend}"))
    return callbacks


def build_trainer(exp: Experiment, spec: nn.Sequential, steps_per_epoch: int,
                  callbacks: Iterable[Callback] = (), *, backend: Backend | None = None) -> Trainer:
    """The Trainer for ``exp``: ``spec``, its optimizer and loss on its backend and device
    (or on ``backend``, already loaded), carrying ``exp``'s settings in its state."""
    trainer = Trainer(spec, exp.optimizer_spec(steps_per_epoch), backend=backend or exp.backend,
                      device=exp.device, loss=exp.loss, dtype=exp.dtype, seed=exp.seed,
                      callbacks=callbacks, track_grad_norm=exp.tensorboard)
    trainer.settings = replace(exp, name=None, out_dir=None).to_dict()
    return trainer


def run_experiment(exp: Experiment, *, resume_from: str | os.PathLike[str] | None = None,
                   overwrite: bool = False, allow_change: Iterable[str] = (),
                   data: tuple[Any, Any] | None = None,
                   replicas: int | None = None) -> tuple[Trainer, Path]:
    """Train ``exp`` end to end, printing what runs at the start and the result at the end;
    returns the trainer and the output folder.

    The output folder is held (:class:`~crossloop.run_folder.RunFolder`) for the whole
    run. A new run refuses a folder that holds another run's files unless
    ``overwrite``. ``resume_from`` continues the run in that folder from its last
    checkpoint: in place when it is the output folder, else in a new branch that
    starts as a copy of its config and checkpoint (the source is never written).
    The checkpoint's settings must match ``exp`` but for the names in
    ``allow_change`` (:func:`~crossloop.resume.plan_resume`). Writes config.json
    before training (backend resolved; name and out_dir left out, so rerunning it
    never overwrites this run) and history.json after every epoch.

    ``data`` replaces the experiment's data set with your own ``(train, test)``:
    crossloop Batches or native pipelines (a DataLoader, a tf.data.Dataset); the
    model then gets its defaults, as native pipelines do not say what their
    samples look like.

    In a process of a data-parallel world (torchrun's ``WORLD_SIZE`` set, as by
    ``crossloop train --nproc N``) the backend is the data-parallel one, and only
    rank 0 holds the folder, writes files and prints; the other ranks step with it.
    ``replicas`` trains data-parallel over that many devices of this one process
    (the TensorFlow backend's MirroredStrategy; logical CPU devices on a CPU).
    """
    if World.from_env() is None and replicas is None:  # fails before the data
        backend = get_backend(exp.backend, device=exp.device)
    else:
        options = {} if replicas is None else {"replicas": replicas}
        backend = get_data_parallel_backend(exp.backend, device=exp.device,
                                            sync_batchnorm=exp.sync_batchnorm, **options)
    with leaving(backend):
        return _run(exp, backend, resume_from, overwrite, allow_change, data)


def _run(exp: Experiment, backend: Backend, resume_from: str | os.PathLike[str] | None,
         overwrite: bool, allow_change: Iterable[str],
         data: tuple[Any, Any] | None) -> tuple[Trainer, Path]:
    """:func:`run_experiment` on its resolved backend."""
    folder = RunFolder(output_dir(exp))
    state = source = None
    if resume_from is not None:
        source = RunFolder(resume_from)
        state = checkpoint.load(checkpoint_path(source))  # checked before anything is written
    if data is None:
        loaded = load_data(exp)
        train, test, spec = loaded.train, loaded.test, model_spec(exp, loaded)
    else:
        (train, test), spec = data, model_spec(exp, data)
    try:
        steps = len(train)
    except TypeError:
        raise ConfigError(f"the training data ({type(train).__name__}) does not say how many "
                          "batches an epoch has, which the schedule needs") from None
    exp = replace(exp, backend=backend.name)
    # every check runs before the folder is touched: a refused run deletes nothing
    with warnings.catch_warnings(record=True) as caught:  # said once, by the chief
        warnings.simplefilter("always", optim.UnlikelySettingWarning)
        trainer, plan = _prepared(exp, backend, spec, train, steps, state, allow_change, source,
                                  own_data=data is not None)
    if not is_chief(backend):  # a data-parallel rank but 0: stepping with rank 0, silent,
        _attach(trainer, build_callbacks(exp, folder.path, steps, chief=False), state)
        trainer.fit(train, test, epochs=exp.epochs)  # writing nothing
        return trainer, folder.path
    notes = []
    for w in caught:  # the optimizer's notes become lines; any other warning is shown as it was
        if issubclass(w.category, optim.UnlikelySettingWarning):
            notes.append(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    _warn_unlikely(exp, train, notes)
    with folder.hold():
        folder.remove_temporaries()
        if source is None:
            folder.claim(overwrite=overwrite)
        elif source.path.resolve() != folder.path.resolve():
            folder.branch_from(source, overwrite=overwrite)
        _attach(trainer, build_callbacks(exp, folder.path, steps), state)
        if state is not None:
            _announce(trainer, state, plan, folder.path, source.path)
        write_json(folder.path / "config.json", trainer.settings)
        print(f"{describe(exp)}\n{trainer.backend}: {steps} steps/epoch; writing to "
              f"{folder.path}", flush=True)
        history = trainer.fit(train, test, epochs=exp.epochs)
    if history:
        n, seconds = len(history), sum(h["seconds"] for h in history)
        print(f"final {_result(history[-1])} after {n} epoch{'s' * (n != 1)} ({seconds:.1f}s "
              f"training); results in {folder.path}", flush=True)
    return trainer, folder.path


def _prepared(exp: Experiment, backend: Backend, spec: nn.Sequential, train: Any, steps: int,
              state: dict | None, allow_change: Iterable[str],
              source: RunFolder | None, *, own_data: bool) -> tuple[Trainer, ResumePlan]:
    """The run's trainer, checked against its data (``own_data``: passed to
    run_experiment, not the experiment's data set) and resumed from ``state`` as the
    plan says, without callbacks yet: every check that can refuse the run."""
    plan = (plan_resume(state["settings"], exp, state, steps, allow_change)
            if state is not None and state.get("settings") else ResumePlan())
    trainer = build_trainer(exp, spec, steps, backend=backend)
    _check_data(trainer, train, exp, own_data)
    if state is not None:
        _load(trainer, state, plan, source.path)
    return trainer, plan


def _attach(trainer: Trainer, callbacks: list[Callback], state: dict | None) -> None:
    """Give ``trainer`` its callbacks, with their saved states when resuming."""
    trainer.callbacks = callbacks
    if state is not None:
        trainer.load_callback_states(state)


def _warn_unlikely(exp: Experiment, train: Any, notes: list[str]) -> None:
    """Say on stderr when a setting is legal but probably not what was meant: the
    optimizer's ``notes`` (:class:`~crossloop.optim.UnlikelySettingWarning`) and a
    batch larger than the data."""
    samples = getattr(train, "num_samples", None)
    if samples is not None and exp.batch_size > samples:
        notes = [*notes, f"batch_size (--batch-size) {exp.batch_size} is larger than the "
                 f"{samples} training samples: every step sees the whole set"]
    for note in notes:
        print(f"crossloop: warning: {note}", file=sys.stderr, flush=True)


def _check_data(trainer: Trainer, train: Any, exp: Experiment, own_data: bool) -> None:
    """Raise ConfigError (a bad setting) unless the model fits the training data."""
    try:
        trainer.check_data(train)
    except ValueError as exc:
        data = "the data you passed" if own_data else f"data set {exp.dataset}"
        raise ConfigError(f"model {exp.model} does not fit {data} (loss {exp.loss}): "
                          f"{exc}") from None


def _load(trainer: Trainer, state: dict, plan: ResumePlan, source: Path) -> None:
    """Load ``state`` into ``trainer`` as ``plan`` says (this run's settings kept)."""
    settings = trainer.settings  # this run's, not the checkpoint's
    try:
        trainer.load_state_dict(state, reset_optimizer=plan.reset_optimizer)
    except StateError as exc:
        raise checkpoint.CheckpointError(f"the checkpoint in {source} does not fit this run: "
                                         f"{exc}") from None
    trainer.settings = settings


def _announce(trainer: Trainer, state: dict, plan: ResumePlan, folder: Path,
              source: Path) -> None:
    """Say where the run resumes and what changed."""
    branch = "" if source.resolve() == folder.resolve() else f" from {source} into {folder}"
    print(f"resuming{branch} at step {trainer.step} (epoch {trainer.epoch + 1}, batch "
          f"{trainer.batch}), saved on {state['backend']}", flush=True)
    for note in plan.notes:
        print(f"  changed: {note}", flush=True)


def _result(logs: dict[str, float]) -> str:
    """The headline test result of an epoch: R^2 and loss for regression, else accuracy
    (and perplexity for a language model)."""
    if "test_r2" in logs:
        return f"test R^2 {logs['test_r2']:.4f} (test loss {logs['test_loss']:.4f})"
    if "test_mae" in logs:
        return f"test MAE {logs['test_mae']:.4f} (test loss {logs['test_loss']:.4f})"
    perplexity = (f" (perplexity {logs['test_perplexity']:.2f})"
                  if "test_perplexity" in logs else "")
    return f"test accuracy {logs.get('test_accuracy', float('nan')):.4f}{perplexity}"


def checkpoint_path(folder: RunFolder) -> Path:
    """The checkpoint a resume continues from: the run folder's last one."""
    if not folder.checkpoint.is_file():
        raise checkpoint.CheckpointError(
            f"nothing to resume in {folder.path}: no {CHECKPOINT} (was the run started with "
            "checkpoints, and is this its folder?)")
    return folder.checkpoint


def describe(exp: Experiment) -> str:
    """One line naming the experiment: model, data, optimizer, schedule, batch, seed."""
    return (f"{exp.model} on {exp.dataset}: {exp.optimizer} lr {exp.lr:g} {exp.schedule}, "
            f"batch {exp.batch_size}, seed {exp.seed}")


def _have(module: str, extra: str, setting: str | None) -> bool:
    """Whether an optional extra is installed; if not, say so once and go on without it,
    naming the Experiment ``setting`` (and its flag) that turns the feature off, if any."""
    if find_spec(module) is not None:
        return True
    silence = f", or set {setting}=False (--no-{setting}) to silence this" if setting else ""
    print(f"crossloop: {module} is not installed, skipping it (pip install "
          f"'crossloop[{extra}]'{silence})", file=sys.stderr)
    return False
