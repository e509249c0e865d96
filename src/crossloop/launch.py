"""Start the processes of a data-parallel run on this machine, over loopback only.

:func:`launch` runs one command as ranks 0..N-1 with torchrun's environment
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1`` and a free
``MASTER_PORT``) plus a ``TF_CONFIG`` naming one free localhost port per worker,
so the same processes can join a torch process group or a TensorFlow
``MultiWorkerMirroredStrategy``. Rank 0 keeps its standard output; the others
print only errors. The first rank to fail stops the others; SIGINT and SIGTERM
are passed on to every rank, which then stop together after the same step.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from .errors import InputError
from .signals import stop_on_signals

GRACE_SECONDS = 30.0   # how long stopped ranks get to save before they are killed
LOOPBACK = "127.0.0.1"
LOOPBACK_INTERFACE = {"linux": "lo", "darwin": "lo0"}.get(sys.platform)
STOPPED = (130, 143)   # the exit codes of a rank stopped by SIGINT/SIGTERM after saving


class LaunchError(InputError):
    """A launch was asked for something that cannot run (no command, fewer than 1 process)."""


@dataclass(frozen=True)
class Outcome:
    """How a launch ended: ``code`` is rank 0's exit code when every rank ended alike,
    else the code of ``failed``, the first rank that failed (None if none did)."""
    code: int
    failed: int | None = None

    def describe(self) -> str:
        """One line saying which rank failed and how, for the launching command."""
        if self.failed is None:
            return f"all ranks exited with code {self.code}"
        how = (f"was killed by {signal.Signals(-self.code).name}" if self.code < 0
               else f"exited with code {self.code}")
        return f"rank {self.failed} {how}; the other ranks were stopped"


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on the loopback interface right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def rank_environments(nproc: int, base: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The environment of each of ``nproc`` local ranks: ``base`` (default: this
    process's) plus the rendezvous variables, and ``OMP_NUM_THREADS`` set to this
    machine's cores divided among the ranks unless already set."""
    base = dict(os.environ if base is None else base)
    master, *workers = free_ports(nproc + 1)
    cluster = {"worker": [f"{LOOPBACK}:{port}" for port in workers]}
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    envs = []
    for rank in range(nproc):
        env = dict(base, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc),
                   LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR=LOOPBACK, MASTER_PORT=str(master),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": rank}}))
        env.setdefault("OMP_NUM_THREADS", threads)
        if LOOPBACK_INTERFACE:  # gloo would otherwise pick the interface of the host name
            env.setdefault("GLOO_SOCKET_IFNAME", LOOPBACK_INTERFACE)
        envs.append(env)
    return envs


def launch(command: Sequence[str], nproc: int, *, env: Mapping[str, str] | None = None,
           timeout: float | None = None) -> Outcome:
    """Run ``command`` as ``nproc`` ranks and wait for all of them.

    When a rank exits with a non-zero code (or ``timeout`` seconds pass: then rank
    0 counts as failed with 124), the others get SIGTERM, and SIGKILL after
    :data:`GRACE_SECONDS`. SIGINT/SIGTERM sent to this process are passed on to
    every rank. Every process started is waited for before this returns.
    """
    if not command:
        raise LaunchError("nothing to launch: the command is empty")
    if nproc < 1:
        raise LaunchError(f"nproc must be >= 1, got {nproc}")
    procs: list[subprocess.Popen] = []

    def forward(name: str) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.Signals[name])

    outcome = None
    deadline = None if timeout is None else time.monotonic() + timeout
    with stop_on_signals(forward):
        try:
            for rank, rank_env in enumerate(rank_environments(nproc, env)):
                procs.append(subprocess.Popen(
                    list(command), env=rank_env,
                    stdout=None if rank == 0 else subprocess.DEVNULL))
            while outcome is None:
                codes = [proc.poll() for proc in procs]
                failed = next((rank for rank, code in enumerate(codes)
                               if code not in (None, 0, *STOPPED)), None)
                if failed is not None:
                    outcome = Outcome(codes[failed], failed)
                elif all(code is not None for code in codes):
                    outcome = Outcome(codes[0] or next((c for c in codes if c), 0))
                elif deadline is not None and time.monotonic() > deadline:
                    outcome = Outcome(124, 0)
                else:
                    time.sleep(0.05)
        finally:
            _stop(procs)
    return outcome


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every rank still running, SIGKILL those still running after the grace
    period, and reap them all."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
