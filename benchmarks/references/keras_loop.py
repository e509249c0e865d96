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


def _basic_block(x, width: int, stride: int):
    """He et al.'s basic block (BatchNorm with torch's momentum and eps)."""
    layers = keras.layers

    def bn():
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)

    out = layers.ReLU()(bn()(layers.Conv2D(width, 3, stride, padding="same", use_bias=False)(x)))
    out = bn()(layers.Conv2D(width, 3, padding="same", use_bias=False)(out))
    if stride != 1 or x.shape[-1] != width:
        x = bn()(layers.Conv2D(width, 1, stride, use_bias=False)(x))
    return layers.ReLU()(layers.Add()([out, x]))


def resnet20(channels: int = 1, num_classes: int = 10) -> keras.Model:
    """The CIFAR ResNet-20 on 28x28 images, in Keras's functional API."""
    layers = keras.layers
    inputs = keras.Input((28, 28, channels))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
    for width in (16, 32, 64):
        for i in range(3):
            x = _basic_block(x, width, 2 if i == 0 and width != 16 else 1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


class _Positions(keras.layers.Layer):
    """Learned position embeddings added to the token embeddings."""

    def __init__(self, seq_len: int, dim: int):
        super().__init__()
        self.table = keras.layers.Embedding(seq_len, dim)

    def call(self, x):
        return x + self.table(keras.ops.arange(keras.ops.shape(x)[1]))


def tiny_gpt(vocab: int, seq_len: int = 64, dim: int = 64, heads: int = 4,
             layers: int = 2) -> keras.Model:
    """Token + position embeddings, pre-LayerNorm blocks with Keras's causal
    MultiHeadAttention and a GELU MLP, final LayerNorm, linear head."""
    L = keras.layers
    tokens = keras.Input((seq_len,), dtype="int64")
    x = _Positions(seq_len, dim)(L.Embedding(vocab, dim)(tokens))
    for _ in range(layers):
        h = L.LayerNormalization(epsilon=1e-5)(x)
        x = x + L.MultiHeadAttention(heads, dim // heads)(h, h, use_causal_mask=True)
        h = L.LayerNormalization(epsilon=1e-5)(x)
        x = x + L.Dense(dim)(L.Dense(4 * dim, activation="gelu")(h))
    return keras.Model(tokens, L.Dense(vocab)(L.LayerNormalization(epsilon=1e-5)(x)))


MODELS = {"mlp": mlp, "conv1": conv1, "lenet5": lenet5, "resnet20": resnet20, "tiny-gpt": tiny_gpt}


def _loss() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class HandLoop:
    """The custom-loop guide's ``tf.function`` step (needs KERAS_BACKEND=tensorflow)."""

    def __init__(self, model: str, lr: float, **options: int):
        import tensorflow as tf

        self.model = MODELS[model](**options)
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
        """One pass over NumPy ``(x, y)`` batches (NHWC images, or token windows with
        next-token targets); returns the mean loss."""
        self.loss_metric.reset_state()
        self.accuracy.reset_state()
        for x, y in batches:
            self._step(self._tf.convert_to_tensor(x), self._tf.convert_to_tensor(y))
        return float(self.loss_metric.result())


class Fit:
    """Keras ``model.fit`` on whole NumPy arrays (one epoch per window)."""

    def __init__(self, model: str, lr: float, **options: int):
        self.model = MODELS[model](**options)
        self.model.compile(keras.optimizers.Adam(lr), _loss(), metrics=["accuracy"])

    def train(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        history = self.model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
        return history.history["loss"][-1]
