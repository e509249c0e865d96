"""The TensorFlow/Keras reference: models, the custom-loop guide's step, and ``fit``.

Models are ordinary Keras models on NHWC images (Keras's layout). The loop is the
TensorFlow "custom training loop" guide's: a ``tf.function`` step with a
``GradientTape`` and ``optimizer.apply_gradients``, loss and accuracy kept in Keras
metrics on the device. ``fit`` is Keras's own trainer on the same model kind; the
module works with any Keras backend (``KERAS_BACKEND=torch`` gives Keras on PyTorch).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np


def mlp() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])


def conv1() -> keras.Model:
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])


def lenet5() -> keras.Model:
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(6, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(120, activation="relu"), layers.Dense(84, activation="relu"), layers.Dense(10)])


MODELS = {"mlp": mlp, "conv1": conv1, "lenet5": lenet5}


def _loss() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class HandLoop:
    """The custom-loop guide's ``tf.function`` step (needs KERAS_BACKEND=tensorflow)."""

    def __init__(self, model: str, lr: float):
        import tensorflow as tf

        self.model = MODELS[model]()
        self.optimizer = keras.optimizers.Adam(lr)
        self.loss_fn = _loss()
        self.loss_metric = keras.metrics.Mean()
        self.accuracy = keras.metrics.SparseCategoricalAccuracy()
        self._tf = tf

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                logits = self.model(x, training=True)
                loss = self.loss_fn(y, logits)
            grads = tape.gradient(loss, self.model.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
            self.loss_metric.update_state(loss)
            self.accuracy.update_state(y, logits)

        self._step = step

    def train(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
        """One pass over NumPy ``(x, y)`` batches (NHWC images); returns the mean loss."""
        self.loss_metric.reset_state()
        self.accuracy.reset_state()
        for x, y in batches:
            self._step(self._tf.convert_to_tensor(x), self._tf.convert_to_tensor(y))
        return float(self.loss_metric.result())


class Fit:
    """Keras ``model.fit`` on whole NumPy arrays (one epoch per window)."""

    def __init__(self, model: str, lr: float):
        self.model = MODELS[model]()
        self.model.compile(keras.optimizers.Adam(lr), _loss(), metrics=["accuracy"])

    def train(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        history = self.model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
        return history.history["loss"][-1]
