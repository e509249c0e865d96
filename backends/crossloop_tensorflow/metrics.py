"""Running loss and accuracy sums kept in TensorFlow variables (see crossloop.metrics)."""

from __future__ import annotations

import tensorflow as tf

from crossloop import metrics


class Metrics:
    """Device-side accumulators: nothing here waits on the host until ``results``."""

    def __init__(self, device: str, grad_norm: bool = False):
        with tf.device(device):
            self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
            self.correct = tf.Variable(0, dtype=tf.int64, trainable=False)
            # integer targets compared: samples, or tokens of token sequences
            self.labels = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.grad_norm_sum = (tf.Variable(0.0, dtype=tf.float64, trainable=False)
                                  if grad_norm else None)
            self.steps = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.abs_error_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
            # float targets compared (regression)
            self.values = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.compiled: dict = {}  # compiled steps that update these accumulators

    def add_grad_norm(self, grads: list[tf.Tensor]) -> None:
        """Accumulate the step's global gradient norm (call before clipping)."""
        self.grad_norm_sum.assign_add(tf.cast(tf.linalg.global_norm(grads), tf.float64))
        self.steps.assign_add(1)

    def update(self, loss: tf.Tensor, logits: tf.Tensor, y: tf.Tensor) -> None:
        n = tf.shape(y, out_type=tf.int64)[0]
        self.loss_sum.assign_add(tf.cast(loss, tf.float64) * tf.cast(n, tf.float64))
        if y.dtype.is_integer:  # class or token ids, on the logits' last axis
            hits = tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y)
            self.correct.assign_add(tf.reduce_sum(tf.cast(hits, tf.int64)))
            self.labels.assign_add(tf.size(y, out_type=tf.int64))
        else:
            self.abs_error_sum.assign_add(tf.cast(tf.reduce_sum(tf.abs(logits - y)), tf.float64))
            self.values.assign_add(tf.size(y, out_type=tf.int64))
        self.count.assign_add(n)

    def _running(self) -> dict[str, float | None]:
        """Every running sum as a Python number, named as ``crossloop.metrics.results``
        takes them (``grad_norm_sum`` None unless tracked)."""
        return {"loss_sum": float(self.loss_sum.numpy()), "correct": int(self.correct.numpy()),
                "labels": int(self.labels.numpy()), "count": int(self.count.numpy()),
                "grad_norm_sum": (None if self.grad_norm_sum is None
                                  else float(self.grad_norm_sum.numpy())),
                "steps": int(self.steps.numpy()), "abs_error_sum": float(self.abs_error_sum.numpy()),
                "values": int(self.values.numpy())}

    def results(self) -> dict[str, float]:
        return metrics.results(**self._running())

    def reset(self) -> None:
        for variable in (self.loss_sum, self.correct, self.labels, self.count, self.steps,
                         self.grad_norm_sum, self.abs_error_sum, self.values):
            if variable is not None:
                variable.assign(tf.zeros_like(variable))

    def sums(self) -> dict[str, float]:
        """The raw running sums, exactly (for checkpoints: ``crossloop.metrics.checkpoint_sums``)."""
        return metrics.checkpoint_sums(self._running())

    def load_sums(self, sums: dict[str, float]) -> None:
        restored = metrics.restored_sums(sums)  # older checkpoints' missing keys filled in
        self.loss_sum.assign(restored["loss_sum"])
        self.correct.assign(restored["correct"])
        self.labels.assign(restored["labels"])
        self.count.assign(restored["count"])
        self.abs_error_sum.assign(restored["abs_error_sum"])
        self.values.assign(restored["values"])
        if self.grad_norm_sum is not None and restored["grad_norm_sum"] is not None:
            self.grad_norm_sum.assign(restored["grad_norm_sum"])
            self.steps.assign(restored["steps"])
