"""The callback base class: code that runs on the loop's named events.

Subclass :class:`Callback` and override the events you need; each receives the
:class:`~crossloop.trainer.Trainer` (its backend, model, optimizer, step,
epoch). A callback ends a run with ``trainer.stop(reason)``. One with state
worth resuming defines ``state_dict()`` / ``load_state_dict(state)``; the
trainer's own state dict carries it under the callback's class name.
"""

from __future__ import annotations

from typing import Any


class Callback:
    """No-op hooks for every loop event."""

    def on_fit_start(self, trainer: Any) -> None: ...
    def on_epoch_start(self, trainer: Any) -> None: ...
    def on_batch_end(self, trainer: Any) -> None: ...
    def on_epoch_end(self, trainer: Any, logs: dict[str, float]) -> None: ...
    def on_interrupt(self, trainer: Any) -> None: ...
    def on_fit_end(self, trainer: Any) -> None: ...
