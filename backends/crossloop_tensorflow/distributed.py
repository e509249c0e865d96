"""Data-parallel training with ``tf.distribute``: ``MirroredStrategy`` over several
devices of one process (GPUs, or logical CPU devices), or
``MultiWorkerMirroredStrategy`` over processes found through ``TF_CONFIG``.

Every replica gets the same global batch (see :mod:`crossloop.distributed`) and
trains, under ``strategy.run``, on its slice of it. The loss a replica
differentiates is its share of the global batch mean -- its mean times
``local / global`` samples, which is ``tf.nn.compute_average_loss``'s per-replica
sum divided by the global batch size -- and the replicas' gradients are summed:
the classic pitfall when porting a single-device loop is to keep each replica's
own mean, which multiplies the gradient by the number of replicas. The sum is
taken before clipping, so the optimizer (clipping included) sees the gradient of
the global batch on every replica; Keras's own summing in ``apply_gradients`` is
switched off for that reason. The replicas' logits are gathered, so the metrics
are updated once with the global batch, exactly as in one process.

BatchNorm: by default each replica normalises its slice with its own statistics,
as Keras's ``BatchNormalization`` does under a strategy. With
``sync_batchnorm=True`` crossloop's BatchNorm layers are ``synchronized`` (as
Keras's ``synchronized=True``): the statistics are the global batch's, as in one
process, on CPU devices too.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from crossloop import distributed, losses, nn, optim
from crossloop.backend import BackendError, NativeOptimizer

from .backend import TensorFlowBackend
from .layers import BatchNorm
from .metrics import Metrics

_SUM = tf.distribute.ReduceOp.SUM


class DataParallelBackend(TensorFlowBackend):
    """The TensorFlow backend, data-parallel under a ``tf.distribute`` strategy.

    In a torchrun-style world (``WORLD_SIZE`` set; ``TF_CONFIG`` names the
    workers) it is ``MultiWorkerMirroredStrategy``, one replica per process;
    otherwise ``MirroredStrategy`` over ``replicas`` (default 2) devices of this
    process: the first GPUs, or on CPU that many logical CPU devices (which must
    be set up before TensorFlow starts its runtime, so make this backend first).
    ``sync_batchnorm`` normalises with the global batch's statistics.
    """

    # Every batch size gets its own trace, so each replica's slice has a static shape.
    reduce_retracing = False

    def __init__(self, device: str = "auto", compile: bool = True, jit_compile: bool = False,
                 replicas: int | None = None, sync_batchnorm: bool = False):
        world = distributed.World.from_env()
        super().__init__(device=device, compile=compile, jit_compile=jit_compile)
        if world is not None:
            if replicas is not None:
                raise BackendError("replicas= is for MirroredStrategy in one process; this one "
                                   "is a worker of a multi-process run (WORLD_SIZE is set)")
            if "TF_CONFIG" not in os.environ:
                raise BackendError("multi-worker TensorFlow needs TF_CONFIG naming every worker "
                                   "(crossloop train --nproc N sets it)")
            _threads_per_process()
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
            self._engine = "MultiWorkerMirroredStrategy"
            self.rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            self.world_size = world.size
        else:
            self.strategy = tf.distribute.MirroredStrategy(self._devices(replicas or 2))
            self._engine = "MirroredStrategy"
            self.rank, self.world_size = 0, 1
        self.replicas = self.strategy.num_replicas_in_sync
        self._agree = None  # the compiled cross-worker vote of agree_on_signal
        self.sync_batchnorm = sync_batchnorm

    def __repr__(self) -> str:
        return (f"TensorFlowBackend(device={self.device!r}, tensorflow={tf.__version__}, "
                f"{self._engine} over {self.replicas} replicas, rank "
                f"{self.rank} of {self.world_size})")

    def _devices(self, replicas: int) -> list[str]:
        """``replicas`` devices of this process: GPUs, or logical CPUs made for it."""
        if self.device == "gpu":
            gpus = tf.config.list_logical_devices("GPU")
            if len(gpus) < replicas:
                raise BackendError(f"{replicas} replicas asked for, TensorFlow sees "
                                   f"{len(gpus)} GPUs")
            return [gpu.name for gpu in gpus[:replicas]]
        cpus = tf.config.list_physical_devices("CPU")
        with contextlib.suppress(RuntimeError):  # raised once the runtime has started
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
        logical = tf.config.list_logical_devices("CPU")
        if len(logical) < replicas:
            raise BackendError(f"{replicas} CPU replicas need {replicas} logical CPU devices, "
                               f"but TensorFlow had started with {len(logical)}: create the "
                               "data-parallel backend before anything else runs TensorFlow")
        return [cpu.name for cpu in logical[:replicas]]

    # -- set-up: variables mirrored on every replica ---------------------------------
    def build_model(self, spec: nn.Sequential, params: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> keras.Model:
        with self.strategy.scope():
            model = super().build_model(spec, params, dtype)
        for layer in model._flatten_layers():
            if isinstance(layer, BatchNorm):
                layer.synchronized = self.sync_batchnorm
        return model

    def build_optimizer(self, spec: optim.Optimizer, model: keras.Model) -> NativeOptimizer:
        with self.strategy.scope():
            optimizer = super().build_optimizer(spec, model)
        # The step hands apply_gradients gradients already summed over the replicas
        # (and clipped after the sum); Keras would sum them once more.
        optimizer.native._all_reduce_sum_gradients = lambda grads_and_vars: grads_and_vars
        return optimizer

    # -- the steps: strategy.run on each replica's slice --------------------------------
    def train_step(self, model: keras.Model, optimizer: NativeOptimizer, loss: losses.Loss,
                   metrics: Metrics, x: tf.Tensor,
                   y: tf.Tensor) -> tuple[keras.Model, NativeOptimizer, Metrics]:
        def replica_step(x, y):
            x, y, share = self._part(x, y)
            _, logits, grads = self._weighted_gradients(model, loss, x, y, share)
            grads = tf.distribute.get_replica_context().all_reduce(_SUM, grads)
            self.apply_gradients(optimizer, model, grads)
            return logits, grads

        def step(x, y):
            logits, grads = self.strategy.run(replica_step, (x, y))
            if metrics.grad_norm_sum is not None:  # the summed gradients, before clipping
                metrics.add_grad_norm([self.strategy.experimental_local_results(g)[0]
                                       for g in grads])
            self._update_metrics(metrics, loss, logits, y)

        self._run(metrics, ("train", id(model), id(optimizer), loss), step, x, y)
        return model, optimizer, metrics

    def eval_step(self, model: keras.Model, loss: losses.Loss, metrics: Metrics,
                  x: tf.Tensor, y: tf.Tensor) -> Metrics:
        def replica_step(x, y):
            return self.forward(model, self._part(x, y)[0], training=False)

        def step(x, y):
            self._update_metrics(metrics, loss, self.strategy.run(replica_step, (x, y)), y)

        self._run(metrics, ("eval", id(model), loss), step, x, y)
        return metrics

    def _update_metrics(self, metrics: Metrics, loss: losses.Loss, logits, y: tf.Tensor) -> None:
        """Update the accumulators with the replicas' logits gathered in batch order: the
        metrics of the global batch, as one process computes them."""
        logits = self.strategy.gather(logits, axis=0)
        metrics.update(self.loss(loss, logits, y), logits, y)

    def _part(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, float]:
        """In a replica: its slice of the global batch, and the slice's share of it."""
        context = tf.distribute.get_replica_context()
        replica = tf.get_static_value(context.replica_id_in_sync_group)
        n = x.shape[0]
        mine = distributed.part(n, int(replica), self.replicas)
        return x[mine], y[mine], distributed.loss_share(mine.stop - mine.start, n)

    # -- agreeing on a stop ---------------------------------------------------------
    def agree_on_signal(self, signal_name: str | None) -> str | None:
        """The signal that any worker received (SIGTERM over SIGINT), or None: every
        worker calls this after each step, so all stop after the same one."""
        if self.world_size == 1:
            return signal_name
        if self._agree is None:  # the workers' flags summed, compiled once
            self._agree = tf.function(lambda flags: self.strategy.reduce(
                _SUM, self.strategy.run(lambda f: f, (flags,)), axis=None))
        flags = tf.constant(distributed.signal_flags(signal_name), tf.int64)
        return distributed.agreed_signal(self._agree(flags).numpy().tolist())


def _threads_per_process() -> None:
    """Give this worker ``OMP_NUM_THREADS`` intra- and inter-op threads when it is set
    (``crossloop train --nproc N`` sets cores / N): TensorFlow sizes its pools by the
    cores otherwise, and N workers on one machine would each take them all."""
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        with contextlib.suppress(RuntimeError):  # raised once the runtime has started
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
