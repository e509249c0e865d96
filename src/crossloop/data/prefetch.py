"""Prefetching: the next batches are made in a background thread while the current step runs.

NumPy's indexing and arithmetic and the frameworks' steps release the GIL, so
making a batch (indexing, transforms, augmentation, and -- when the trainer
passes its ``to_device`` along -- the page-locked copy to the GPU) overlaps
the step instead of adding to it. Order and content are unchanged: the thread
only runs the same iterator ahead of the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
_ITEM, _DONE, _ERROR = range(3)
_POLL_S = 0.05  # how often a blocked producer checks whether the consumer left


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, producing up to ``depth`` of them ahead in a thread.

    An exception in the producer is raised here, at the item where it happened.
    Closing the returned generator (a ``break`` out of the loop, or ``close()``)
    stops the thread after the item it is making. ``depth=0`` iterates in this thread.
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    return _prefetched(items, depth) if depth else iter(items)


def _prefetched(items: Iterable[T], depth: int) -> Iterator[T]:
    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(items, slots, stop), daemon=True,
                              name="crossloop-prefetch")
    thread.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _produce(items: Iterable[T], slots: queue.Queue, stop: threading.Event) -> None:
    def put(message: tuple[int, object]) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put((_ITEM, item)):
                return
        put((_DONE, None))
    except BaseException as exc:  # handed to the consumer, raised in its thread
        put((_ERROR, exc))
