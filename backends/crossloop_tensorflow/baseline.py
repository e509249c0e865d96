"""The hand-written TensorFlow loop and Keras ``fit``: what crossloop's TensorFlow step
is measured against.

The loop is written the way the TensorFlow custom-training-loop guide writes it: a
``@tf.function`` step with ``GradientTape``, ``optimizer.apply_gradients`` and
Keras metrics (accuracy as in the guide, plus the mean loss, mirroring
crossloop_torch/baseline.py) read once at the end of the epoch, with the stock
``keras.optimizers.Adam``. The model is built by the TensorFlow backend from the
same spec and initial parameters, so every contender trains the identical network.
"""

from __future__ import annotations

import time
from typing import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from crossloop import nn

from .backend import TensorFlowBackend


def _nhwc(x: np.ndarray) -> np.ndarray:
    """Canonical NCHW batch -> the NHWC layout the Keras model takes (a view when C == 1)."""
    return x.transpose(0, 2, 3, 1)


class HandWrittenLoop:
    """A model, ``keras.optimizers.Adam`` and the guide's ``tf.function`` step;
    ``jit_compile=True`` compiles the step with XLA."""

    def __init__(self, spec: nn.Sequential, params: Mapping[str, np.ndarray], lr: float, *,
                 jit_compile: bool = False):
        self.model = TensorFlowBackend(device="cpu").build_model(spec, params)
        self.optimizer = keras.optimizers.Adam(lr)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.train_loss = keras.metrics.Mean()
        self.train_acc = keras.metrics.SparseCategoricalAccuracy()
        self.train_step = tf.function(self._train_step, jit_compile=jit_compile)

    def _train_step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss_value = self.loss_fn(y, logits)
        grads = tape.gradient(loss_value, self.model.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_weights))
        self.train_loss.update_state(loss_value, sample_weight=tf.shape(y)[0])
        self.train_acc.update_state(y, logits)
        return loss_value

    def train_epoch(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
        """One pass over NumPy ``(x, y)`` batches; returns the epoch's mean loss and accuracy."""
        for x, y in batches:
            self.train_step(tf.convert_to_tensor(_nhwc(x)), tf.convert_to_tensor(y))
        results = {"loss": float(self.train_loss.result()),
                   "accuracy": float(self.train_acc.result())}
        self.train_loss.reset_state()
        self.train_acc.reset_state()
        return results


class KerasFit:
    """The same model and optimizer trained by ``model.fit`` (XLA off, as Keras picks on CPU)."""

    def __init__(self, spec: nn.Sequential, params: Mapping[str, np.ndarray], lr: float):
        self.model = TensorFlowBackend(device="cpu").build_model(spec, params)
        self.model.compile(optimizer=keras.optimizers.Adam(lr),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           metrics=["accuracy"], jit_compile=False)

    def train(self, x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int) -> list[float]:
        """``fit`` NCHW ``x`` and labels ``y`` in the given order for ``epochs`` epochs;
        returns each epoch's seconds, from its start to its end, so ``fit``'s one-off
        set-up (~0.1 s a call) is not charged to the epochs."""
        timer = _EpochTimer()
        self.model.fit(_nhwc(x), y, batch_size=batch_size, epochs=epochs, shuffle=False,
                       verbose=0, callbacks=[timer])
        return timer.seconds


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)
