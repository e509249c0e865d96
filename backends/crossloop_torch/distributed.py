"""Data-parallel training with ``torch.nn.parallel.DistributedDataParallel``: one
process per replica (gloo on CPU, NCCL on GPUs), found through torchrun's
environment variables.

Every process is handed the same global batch (see :mod:`crossloop.distributed`)
and trains on its slice of it. DDP wraps the backend's runnable module (the plain
module stays the model that parameters, checkpoints and parity read, under its
canonical names); its backward averages the replicas' gradients, and each
replica's loss is weighted by its share of the global batch, so the averaged
gradient is the gradient of the global batch mean even when the last batch does
not split evenly. The optimizer, clipping included, then sees reduced gradients
on every rank. Metric sums stay per replica on the device and are added across
processes when read (every rank reads at the same points of the loop).

BatchNorm: by default DDP keeps torch's behaviour, each replica normalising its
slice with its own statistics and rank 0's running statistics broadcast at each
forward. With ``sync_batchnorm=True`` the statistics are those of the global
batch, as in one process: on GPUs torch's ``SyncBatchNorm``; on CPU, where torch's
raises ("expected input tensor to be on GPU"), :class:`GlooSyncBatchNorm`.
"""

from __future__ import annotations

import atexit
import gc
import os
import weakref
from collections.abc import Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed import _functional_collectives as collectives
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from crossloop import distributed, losses, nn
from crossloop.backend import BackendError, NativeOptimizer

from .backend import TorchBackend
from .metrics import Metrics

# The running sums the ranks add up, in the order _reduced packs them.
_ADDED_OVER_RANKS = ("loss_sum", "correct", "abs_error_sum", "labels", "count", "values")


class DataParallelBackend(TorchBackend):
    """The torch backend, data-parallel over the processes of a torchrun-style world.

    The process group is joined here (``env://``): gloo on CPU, NCCL on GPUs, each
    process on GPU ``LOCAL_RANK``. ``rank`` and ``world_size`` say where this
    process stands (one replica per process). ``sync_batchnorm`` normalises with the
    global batch's statistics (see the module's docstring).
    """

    def __init__(self, device: str = "auto", compile: bool = False,
                 sync_batchnorm: bool = False):
        world = distributed.World.from_env()
        if world is None or not {"MASTER_ADDR", "MASTER_PORT"} <= os.environ.keys():
            raise BackendError("data-parallel torch needs RANK, WORLD_SIZE, MASTER_ADDR and "
                               "MASTER_PORT: start it with crossloop train --nproc N or torchrun")
        super().__init__(device=device, compile=compile)
        if self.device == "gpu":
            self._device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self._device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device == "gpu" else "gloo",
                                    rank=world.rank, world_size=world.size)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._wrapped: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._weight = 1.0  # this replica's loss weight in the step being run
        self.sync_batchnorm = sync_batchnorm
        atexit.register(self.close, failed=True)  # for a caller that never closes

    def __repr__(self) -> str:
        return (f"TorchBackend(device={self.device!r}, torch={torch.__version__}, "
                f"DistributedDataParallel {dist.get_backend()}, rank {self.rank} of "
                f"{self.world_size})")

    def build_model(self, spec: nn.Sequential, params: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> torch.nn.Module:
        model = super().build_model(spec, params, dtype)
        if self.sync_batchnorm:  # in place: the root is a container, its names unchanged
            if self.device == "gpu":
                torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            else:
                GlooSyncBatchNorm.convert(model)
        self._wrapped[model] = DistributedDataParallel(
            super()._runnable(model), device_ids=[self._device] if self.device == "gpu" else None)
        return model

    def _runnable(self, model: torch.nn.Module) -> torch.nn.Module:
        """The DDP wrapper of the model (the forward whose backward reduces gradients)."""
        wrapped = self._wrapped.get(model)
        return super()._runnable(model) if wrapped is None else wrapped

    # -- the step: this replica's slice, weighted by its share --------------------
    def train_step(self, model: torch.nn.Module, optimizer: NativeOptimizer, loss: losses.Loss,
                   metrics: Metrics, x: torch.Tensor,
                   y: torch.Tensor) -> tuple[torch.nn.Module, NativeOptimizer, Metrics]:
        x, y, self._weight = self._part(x, y)
        try:
            return super().train_step(model, optimizer, loss, metrics, x, y)
        finally:
            self._weight = 1.0

    def eval_step(self, model: torch.nn.Module, loss: losses.Loss, metrics: Metrics,
                  x: torch.Tensor, y: torch.Tensor) -> Metrics:
        x, y, _ = self._part(x, y)
        return super().eval_step(model, loss, metrics, x, y)

    def gradients(self, model: torch.nn.Module, loss: losses.Loss, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """As the torch backend's, but backward runs on the loss times this replica's
        weight (DDP averages the replicas' gradients during it); the loss returned is
        this replica's unweighted mean, for the metrics."""
        return self._weighted_gradients(model, loss, x, y, self._weight)

    def _part(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This rank's slice of a global batch and its loss weight."""
        n = len(y)
        mine = distributed.part(n, self.rank, self.world_size)
        local = mine.stop - mine.start
        return x[mine], y[mine], distributed.loss_weight(local, n, self.world_size)

    # -- metrics: summed over the processes when read -------------------------------
    def metric_results(self, metrics: Metrics) -> dict[str, float]:
        return self._reduced(metrics).results()

    def metric_sums(self, metrics: Metrics) -> dict[str, float]:
        return self._reduced(metrics).sums()

    def set_metric_sums(self, metrics: Metrics, sums: Mapping[str, float]) -> Metrics:
        """Load the run's sums on rank 0 only: the ranks' sums are added when read."""
        if self.rank == 0:
            return super().set_metric_sums(metrics, sums)
        metrics.reset()
        return metrics

    def _reduced(self, metrics: Metrics) -> Metrics:
        """A copy of ``metrics`` whose loss, hit, label, sample and absolute-error sums
        are those of all ranks (a collective: every rank calls it). The gradient norm
        is already the reduced gradients' on every rank, so it is not added up."""
        counts = [float(n) for n in (metrics.labels, metrics.count, metrics.values)]
        packed = torch.cat([torch.stack([metrics.loss_sum, metrics.correct.to(torch.float64),
                                         metrics.abs_error_sum]),
                            torch.tensor(counts, dtype=torch.float64, device=self._device)])
        dist.all_reduce(packed)
        total = Metrics(self._device, metrics.grad_norm_sum is not None)
        total.load_sums({**metrics._running(), **dict(zip(_ADDED_OVER_RANKS, packed.tolist()))})
        return total

    # -- agreeing on a stop ---------------------------------------------------------
    def agree_on_signal(self, signal_name: str | None) -> str | None:
        """The signal that any rank received (SIGTERM over SIGINT), or None: every rank
        calls this after each step, so all stop after the same one."""
        flags = torch.tensor(distributed.signal_flags(signal_name), device=self._device)
        dist.all_reduce(flags)
        return distributed.agreed_signal(flags.tolist())

    # -- leaving the world ------------------------------------------------------------
    def close(self, failed: bool = False) -> None:
        """Release DDP's hold on the process group, meet the other ranks (unless this
        rank failed: they may never arrive) and destroy the group; a second call does
        nothing. Left to interpreter exit, gloo's threads can outlive the group and abort
        the process ("terminate called without an active exception"):
        :func:`crossloop.distributed.leaving` calls this at the end of a run, and exit
        calls ``close(failed=True)`` for a caller that did not."""
        self._wrapped.clear()
        gc.collect()  # the DDP wrappers, which hold the group's reducer
        if dist.is_initialized():
            if not failed:
                dist.barrier()
            dist.destroy_process_group()


class GlooSyncBatchNorm(_BatchNorm):
    """torch's ``SyncBatchNorm`` on CPU tensors (gloo), where torch's own raises (and
    DDP refuses a CPU module holding one).

    In training, the replicas' per-channel sums, sums of squares and counts (in
    float64, as the sums of squares cancel in the variance) are added with the
    differentiable all-reduce torch recommends
    (``torch.distributed._functional_collectives``); the mean and biased variance of
    the global batch normalise, and the running statistics are updated as torch's
    are, with the unbiased variance over the global count. Gradients: the backward
    of a summing all-reduce sums the ranks' upstream gradients, so each rank's
    parameter gradient holds its own terms of every rank's loss; DDP's average of
    those, each loss weighted by ``replicas * local / global``, is the one-process
    gradient.
    """

    @classmethod
    def convert(cls, module: torch.nn.Module) -> None:
        """Replace every BatchNorm under ``module`` by one of these, its state kept."""
        for name, child in module.named_children():
            if isinstance(child, _BatchNorm):
                sync = cls(child.num_features, child.eps, child.momentum).to(
                    child.running_mean)
                sync.load_state_dict(child.state_dict())
                setattr(module, name, sync)
            else:
                cls.convert(child)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a 2D or larger input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.training:
            return super().forward(x)  # the running statistics: nothing to synchronise
        dims = [0, *range(2, x.dim())]
        c = x.shape[1]
        wide = torch.float64
        count = torch.full((1,), x.numel() // c, dtype=wide, device=x.device)
        local = torch.cat([x.sum(dims, dtype=wide), x.square().sum(dims, dtype=wide), count])
        total, squares, n = collectives.all_reduce(local, "sum", dist.group.WORLD).split([c, c, 1])
        mean64 = total / n
        mean, var = mean64.to(x.dtype), (squares / n - mean64 * mean64).to(x.dtype)
        n = n.to(x.dtype)
        with torch.no_grad():
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean, alpha=m)
            self.running_var.mul_(1 - m).add_(var * n / (n - 1), alpha=m)
            self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        scale = self.weight / torch.sqrt(var + self.eps)
        return (x - mean.view(shape)) * scale.view(shape) + self.bias.view(shape)
