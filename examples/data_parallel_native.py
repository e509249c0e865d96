"""Each framework's own data-parallel step, with no crossloop in it: what rows 30-32
of docs/framework-differences.md say, shown natively (tests/test_distributed.py and
tests/test_distributed_batchnorm.py run every mode).

    torchrun --nproc_per_node 2 examples/data_parallel_native.py torch OUT.json
    python examples/data_parallel_native.py tensorflow OUT.json

Loss scaling: one weight w = 0, targets 1, loss mean((w x - 1)^2), so a sample's
gradient is -2x. ``torch`` (2 ranks, as torchrun or ``crossloop.launch`` starts
them): DDP on the global batch x = [1, 2, 3], split [1, 2] and [3], each rank's
mean loss; rank 0 writes the gradient DDP leaves. ``tensorflow``: Keras SGD(lr=1)
under MirroredStrategy on two logical CPUs, x = [1, 2] and [3, 4], each replica's
mean loss; writes w after the step.

BatchNorm: one training forward of a one-feature BatchNorm on the global batch
[1, 2, 3, 6] split [1, 2] and [3, 6] (global mean 3, the slices' 1.5 and 4.5),
running mean from 0 with weight 0.1 on the batch. ``torch-batchnorm`` (2 ranks):
``nn.BatchNorm1d`` under DDP; rank 0 writes every rank's running mean and the
errors torch's ``SyncBatchNorm`` raises on CPU. ``tensorflow-batchnorm``: Keras
``BatchNormalization`` (momentum 0.9) under MirroredStrategy on two logical CPUs,
without and with ``synchronized=True``; writes each one's moving mean.
"""

from __future__ import annotations

import gc
import json
import sys


def torch_ddp_gradient() -> float | None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight)
    ddp = DistributedDataParallel(model)
    x = torch.tensor([[1.0], [2.0]] if rank == 0 else [[3.0]], dtype=torch.float64)
    ((ddp(x) - 1) ** 2).mean().backward()
    grad = model.weight.grad.item()
    del ddp  # DDP's reducer holds the process group: release it (gc: it sits in cycles),
    gc.collect()  # let both ranks arrive, then tear the group down; a group left to
    dist.barrier()  # interpreter exit, or destroyed under a live DDP, can abort the process
    dist.destroy_process_group()  # ("terminate called without an active exception")
    return grad if rank == 0 else None


def torch_ddp_batchnorm() -> dict | None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = torch.nn.BatchNorm1d(1, momentum=0.1, dtype=torch.float64)
    ddp = DistributedDataParallel(model)
    x = torch.tensor([[1.0], [2.0]] if rank == 0 else [[3.0], [6.0]], dtype=torch.float64)
    ddp(x).sum().backward()
    means = [torch.zeros(1, dtype=torch.float64) for _ in range(2)]
    dist.all_gather(means, model.running_mean)
    errors = []
    sync = torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        torch.nn.Sequential(torch.nn.BatchNorm1d(1, dtype=torch.float64)))
    for attempt in (lambda: sync(x), lambda: DistributedDataParallel(sync)):
        try:
            attempt()
        except ValueError as exc:
            errors.append(str(exc))
    del ddp  # as in torch_ddp_gradient
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    return {"running_means": [m.item() for m in means], "errors": errors} if rank == 0 else None


def keras_mirrored_batchnorm() -> dict:
    import keras
    import tensorflow as tf

    strategy = _two_cpus()
    data = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([[[1.0], [2.0]], [[3.0], [6.0]]][ctx.replica_id_in_sync_group],
                                tf.float64))
    means = {}
    for synchronized in (False, True):
        with strategy.scope():
            layer = keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized,
                                                    dtype="float64")
            layer.build((None, 1))

        @tf.function
        def forward(x, layer=layer):
            return strategy.run(lambda slice_: layer(slice_, training=True), (x,))

        forward(data)
        means["synchronized" if synchronized else "per_replica"] = float(
            layer.moving_mean.numpy()[0])
    return means


def _two_cpus():
    """MirroredStrategy over two logical CPU devices (before TensorFlow starts its runtime)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def keras_mirrored_step() -> float:
    import keras
    import tensorflow as tf

    strategy = _two_cpus()
    with strategy.scope():
        w = tf.Variable(0.0, dtype=tf.float64)
        opt = keras.optimizers.SGD(learning_rate=1.0)
        opt.build([w])

    def replica(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((w * x - 1) ** 2)
        opt.apply_gradients([(tape.gradient(loss, w), w)])

    data = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([[1.0, 2.0], [3.0, 4.0]][ctx.replica_id_in_sync_group],
                                tf.float64))
    tf.function(lambda x: strategy.run(replica, (x,)))(data)
    return float(w.numpy())


if __name__ == "__main__":
    framework, out = sys.argv[1], sys.argv[2]
    result = {"torch": torch_ddp_gradient, "tensorflow": keras_mirrored_step,
              "torch-batchnorm": torch_ddp_batchnorm,
              "tensorflow-batchnorm": keras_mirrored_batchnorm}[framework]()
    if result is not None:  # rank 0 (or the one TensorFlow process) reports
        print(json.dumps(result))
        with open(out, "w") as f:
            json.dump(result, f)
