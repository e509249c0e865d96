"""Data-parallel training on the frameworks' own engines, with the single-process
run as the contract.

N replicas training on a global batch of B samples compute the same training as
one process on that batch: every process draws the same global batches from the
one seeded pipeline (a pure function of seed, epoch and sample index, so the
order does not depend on N), and each replica takes its own contiguous slice of
each (:func:`part`). A replica's mean loss is weighted by its slice's size, so
that the reduced gradient is the gradient of the global batch mean whatever the
slice sizes: by :func:`loss_share` where the engine sums the replicas' gradients
(TensorFlow's all-reduce), by :func:`loss_weight` where it averages them (torch
DDP). Gradients are reduced before clipping, and metric sums are added across
replicas before anyone reads them.

The engines are the frameworks' own: a backend package offers data parallelism
with a module ``<package>.distributed`` holding a ``DataParallelBackend`` class
(crossloop_torch: ``DistributedDataParallel``; crossloop_tensorflow:
``tf.distribute``). This module imports no framework.

Processes find each other by torchrun's environment variables (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; TensorFlow also reads
``TF_CONFIG``), set by ``crossloop train --nproc N`` on one machine or by
``torchrun`` / a cluster across machines.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .backend import Backend, BackendError
from .registry import choose_backend_name, get_backend
from .trainer import Interrupted


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run: ``rank`` of ``size``."""
    rank: int = 0
    size: int = 1

    @classmethod
    def from_env(cls) -> World | None:
        """The world torchrun's ``RANK``/``WORLD_SIZE`` describe, or None when they are unset
        (a plain single-process run)."""
        if "WORLD_SIZE" not in os.environ:
            return None
        try:
            world = cls(int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"]))
        except ValueError:
            raise BackendError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE="
                               f"{os.environ['WORLD_SIZE']!r} must be whole numbers") from None
        if not 0 <= world.rank < world.size:
            raise BackendError(f"RANK={world.rank} is not in 0..{world.size - 1} (WORLD_SIZE)")
        return world


def part(n: int, replica: int, replicas: int) -> slice:
    """The samples of a global batch of ``n`` that ``replica`` of ``replicas`` trains on:
    contiguous, sizes differing by at most one, the larger ones first (as
    ``np.array_split``). Raises ValueError when a replica would get no sample."""
    if n < replicas:
        raise ValueError(f"a batch of {n} samples cannot be split over {replicas} replicas: "
                         f"every replica needs at least one sample (use a batch size of at least "
                         f"{replicas}, and a data size whose last batch is not smaller)")
    size, extra = divmod(n, replicas)
    start = replica * size + min(replica, extra)
    return slice(start, start + size + (replica < extra))


def loss_share(local: int, n: int) -> float:
    """The factor on a replica's mean loss over its ``local`` samples that makes the
    replicas' losses *sum* to the mean over all ``n``: ``local / n``."""
    return local / n


def loss_weight(local: int, n: int, replicas: int) -> float:
    """The factor on a replica's mean loss over its ``local`` samples that makes the
    replicas' losses average (torch DDP averages gradients) to the mean over all
    ``n``: ``local * replicas / n``; 1 when the slices are equal."""
    return local * replicas / n


SIGNALS = ("SIGINT", "SIGTERM")  # what a rank may have received, in rising precedence


def signal_flags(signal_name: str | None) -> list[int]:
    """One flag per name of :data:`SIGNALS`: 1 for the signal this rank received. A
    data-parallel backend sums the ranks' flags (``agree_on_signal``) and reads the
    sum with :func:`agreed_signal`, so every rank stops after the same step."""
    return [int(signal_name == name) for name in SIGNALS]


def agreed_signal(flag_sums: Sequence[int]) -> str | None:
    """The signal some rank received (SIGTERM over SIGINT), from the summed flags."""
    return next((name for name, n in zip(reversed(SIGNALS), reversed(list(flag_sums))) if n),
                None)


def is_chief(backend: Any) -> bool:
    """Whether this process writes the run's files and prints: rank 0, or any
    process of a backend that is not data-parallel."""
    return getattr(backend, "rank", 0) == 0


def get_data_parallel_backend(name: str | None = None, *, device: str = "auto",
                              **options: Any) -> Backend:
    """The data-parallel twin of backend ``name`` (default as in
    :func:`~crossloop.registry.get_backend`): ``<package>.distributed.DataParallelBackend``
    of the package that registers it, configured with ``device`` and ``options``
    (the TensorFlow one takes ``replicas=N`` for N devices in one process)."""
    single = type(get_backend(name, device=device))
    package = single.__module__.rsplit(".", 1)[0]
    try:
        module = importlib.import_module(f"{package}.distributed")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.distributed":
            raise
        raise BackendError(f"backend {choose_backend_name(name)!r} offers no data-parallel "
                           f"training (no module {package}.distributed)") from None
    return module.DataParallelBackend(device=device, **options)


@contextmanager
def leaving(backend: Any) -> Iterator[None]:
    """Run the block, then let a data-parallel ``backend`` leave its world: its
    ``close()`` meets the other ranks and tears the process group down (also after a
    stop by signal, which every rank takes after the same step), or, when the block
    failed, ``close(failed=True)`` tears it down without waiting for ranks that may
    never arrive. Backends without ``close`` hold nothing to release."""
    close = getattr(backend, "close", lambda failed=False: None)
    try:
        yield
    except Interrupted:
        close()
        raise
    except BaseException:
        close(failed=True)
        raise
    close()
