"""What a resumed run may change: the settings of a run that continues are compared
with those its checkpoint was trained with, and every difference is refused,
named with both values, unless the user allows it -- then its consequence is
said out loud.

Some settings define the data and the model the position refers to (the data
set, the model, the batch size, the seed): they never change when a run
continues. The others change what the optimizer does from the resumed step on
(optimizer, its hyperparameters, the schedule and its horizon, clipping, the
dtype) and may change with ``--allow-change NAME``. Extending a finished run's
``epochs`` under a decaying schedule is such a change: left at its old horizon
the schedule would train the new epochs at its final rate (0 for cosine), so it
is either re-planned, with the jump in the rate printed, or refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from . import optim
from .errors import InputError
from .experiment import ConfigError, Experiment

# Settings the checkpoint's position is tied to: a run continues with exactly these.
FIXED = ("dataset", "data_source", "model", "batch_size", "seed")
# Settings that may change with --allow-change NAME, each with what changing it means.
CHANGEABLE = {
    "optimizer": "the optimizer state (moments, momentum) starts afresh",
    "lr": "the learning rate changes from the resumed step on",
    "momentum": "the momentum changes from the resumed step on",
    "nesterov": "the momentum form changes from the resumed step on",
    "weight_decay": "the weight decay changes from the resumed step on",
    "eps": "the optimizer's epsilon changes from the resumed step on",
    "alpha": "RMSprop's averaging of the squared gradients changes from the resumed step on",
    "centered": "RMSprop's state (the gradient average) starts afresh",
    "lr_decay": "Adagrad's learning-rate decay changes from the resumed step on",
    "initial_accumulator_value": "Adagrad's starting sum matters only to a fresh optimizer: "
                                 "the saved sums continue",
    "rho": "Adadelta's averaging changes from the resumed step on",
    "schedule": "the learning-rate schedule changes from the resumed step on",
    "warmup_steps": "the schedule's warmup changes",
    "step_size": "the step schedule's decay interval changes",
    "gamma": "the step schedule's decay factor changes",
    "clip_norm": "gradient clipping changes from the resumed step on",
    "epochs": "the schedule is re-planned over the new number of epochs",
    "dtype": "parameters and optimizer state are cast to the new dtype",
}


class ResumeError(InputError, ValueError):
    """A resumed run's settings differ from its checkpoint's in a way not allowed."""


@dataclass
class ResumePlan:
    """How to load a checkpoint into a run whose settings may differ: whether the
    optimizer starts afresh, and one line per accepted change saying what it does."""
    reset_optimizer: bool = False
    notes: list[str] = field(default_factory=list)


def plan_resume(saved_settings: Mapping[str, Any], exp: Experiment, state: Mapping[str, Any],
                steps_per_epoch: int, allowed: Iterable[str] = ()) -> ResumePlan:
    """Compare ``exp`` with the settings a checkpoint was trained with (``saved_settings``,
    as stored in its state) at the checkpoint's ``state`` position; return the plan,
    or raise :class:`ResumeError` naming the first difference that is not allowed."""
    try:
        saved = Experiment.from_dict({k: v for k, v in saved_settings.items()
                                      if k in {f.name for f in fields(Experiment)}},
                                     source="the checkpoint's settings")
    except ConfigError as exc:
        raise ResumeError(str(exc)) from None
    allowed = set(allowed)
    for name in FIXED:
        old, new = getattr(saved, name), getattr(exp, name)
        if old != new:
            raise ResumeError(f"{name} cannot change when a run continues: it was trained with "
                              f"{name} {old!r}, this run has {new!r}; drop the setting, or "
                              "start a new run")
    step = state["step"]
    old_spec, new_spec = saved.optimizer_spec(steps_per_epoch), exp.optimizer_spec(steps_per_epoch)
    changed = [name for name in CHANGEABLE if getattr(saved, name) != getattr(exp, name)]
    if "epochs" in changed and _horizon_free(saved, exp, steps_per_epoch):
        changed.remove("epochs")  # the schedule does not depend on the run's length
    if state["epoch"] >= exp.epochs:
        raise ResumeError(f"the run has finished its {state['epoch']} epochs; nothing to "
                          "train: to train longer, pass --epochs N (more than "
                          f"{state['epoch']})")
    for name in changed:
        if name not in allowed:
            raise ResumeError(_refusal(name, saved, exp, old_spec, new_spec, step))
    plan = ResumePlan()
    if type(old_spec) is not type(new_spec) or optim.slots(old_spec) != optim.slots(new_spec):
        plan.reset_optimizer = True
        plan.notes.append(f"optimizer {_describe(old_spec)} -> {_describe(new_spec)}: its state "
                          f"starts afresh at step {step}")
    old_lr, new_lr = old_spec.lr(step), new_spec.lr(step)
    if old_lr != new_lr:
        plan.notes.append(f"learning rate at step {step}: {old_lr:.4g} -> {new_lr:.4g} "
                          f"({', '.join(changed)} changed)")
    for name in ("clip_norm", "dtype"):
        if name in changed:
            plan.notes.append(f"{name} {getattr(saved, name)} -> {getattr(exp, name)}: "
                              f"{CHANGEABLE[name]}")
    return plan


def _horizon_free(saved: Experiment, exp: Experiment, steps_per_epoch: int) -> bool:
    """Whether the saved run's schedule is the same whatever its number of epochs."""
    longer = replace(saved, epochs=exp.epochs)
    return saved.optimizer_spec(steps_per_epoch) == longer.optimizer_spec(steps_per_epoch)


def _refusal(name: str, saved: Experiment, exp: Experiment, old_spec: optim.Optimizer,
             new_spec: optim.Optimizer, step: int) -> str:
    old, new = getattr(saved, name), getattr(exp, name)
    if name == "epochs":
        horizon = getattr(old_spec.lr, "total_steps", step)
        return (f"--epochs {new} changes a run planned for {old} epochs: its {saved.schedule} "
                f"schedule reaches lr {old_spec.lr(horizon):.4g} at step {horizon} and stays "
                f"there, so continuing it would not train at the planned rates; pass "
                f"--allow-change epochs to re-plan the schedule over {new} epochs (lr at step "
                f"{step}: {old_spec.lr(step):.4g} -> {new_spec.lr(step):.4g})")
    return (f"resuming would change {name} from {old!r} to {new!r} (the checkpoint was trained "
            f"with {old!r}); pass --allow-change {name} to accept it ({CHANGEABLE[name]}), "
            "or drop the setting")


def _describe(spec: optim.Optimizer) -> str:
    return type(spec).__name__
