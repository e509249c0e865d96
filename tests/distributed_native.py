"""Each framework's own data-parallel gradient, with no crossloop in the step, for
the loss-scaling row of docs/framework-differences.md.

One weight w = 0, targets 1, loss mean((w x - 1)^2), so a sample's gradient is
-2x. ``python tests/distributed_native.py torch OUT.json`` (as 2 ranks of
``crossloop.launch``): DDP on the global batch x = [1, 2, 3], split [1, 2] and
[3], each rank's mean loss; rank 0 writes the gradient DDP leaves. ``python
tests/distributed_native.py tensorflow OUT.json``: Keras SGD(lr=1) under
MirroredStrategy on two logical CPUs, x = [1, 2] and [3, 4], each replica's mean
loss; writes w after the step.
"""

from __future__ import annotations

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
    del ddp  # DDP's reducer holds the process group: release it, let both ranks arrive,
    dist.barrier()  # then tear the group down (destroying it under a live DDP can abort)
    dist.destroy_process_group()
    return grad if rank == 0 else None


def keras_mirrored_step() -> float:
    import keras
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
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
    result = torch_ddp_gradient() if framework == "torch" else keras_mirrored_step()
    if result is not None:
        with open(out, "w") as f:
            json.dump(result, f)
