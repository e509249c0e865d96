"""The TensorFlow backend: ``tf.GradientTape`` for gradients, ``apply_gradients`` to apply them.

Methods appear in the same order as in crossloop_torch/backend.py, so the two
files read side by side; what both share is in ``crossloop.backend.BaseBackend``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from crossloop import losses, nn, optim
from crossloop.backend import BackendError, BaseBackend, NativeOptimizer
from crossloop.native import NativeLoss, NativeOptimizerSpec
from crossloop.tracing import LayerRecord

from . import model as model_lib
from . import native as native_lib
from . import optimizers, tracing
from .metrics import Metrics


class TensorFlowBackend(BaseBackend):
    """crossloop's loop phases in TensorFlow.

    ``compile=True`` (default) runs the fused ``train_step``/``eval_step`` as
    one ``tf.function`` each; ``jit_compile=True`` also compiles them with XLA.
    """

    name = "tensorflow"
    # Traces of a step after the first take any batch size (one trace, not one per size).
    reduce_retracing = True

    def __init__(self, device: str = "auto", compile: bool = True, jit_compile: bool = False):
        if keras.backend.backend() != "tensorflow":
            raise BackendError(f"Keras is running on {keras.backend.backend()!r} (KERAS_BACKEND); "
                               "the tensorflow backend needs KERAS_BACKEND=tensorflow")
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        if device == "gpu" and not has_gpu:
            raise BackendError("device='gpu' was asked for, but TensorFlow sees no GPU "
                               "(tf.config.list_physical_devices('GPU') is empty); "
                               "use device='cpu' or 'auto'")
        self.device = "gpu" if has_gpu and device != "cpu" else "cpu"
        self._device = "/GPU:0" if self.device == "gpu" else "/CPU:0"
        self.compile = compile
        self.jit_compile = jit_compile

    def __repr__(self) -> str:
        return f"TensorFlowBackend(device={self.device!r}, tensorflow={tf.__version__})"

    # -- set-up ---------------------------------------------------------------
    def build_model(self, spec: nn.Sequential, params: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> keras.Model:
        with tf.device(self._device):
            model = model_lib.build(spec, dtype)
        return self.set_params(model, params)

    def adopt_model(self, model: keras.Model) -> keras.Model:
        return native_lib.adopt_model(model)

    def build_optimizer(self, spec: optim.Optimizer | NativeOptimizerSpec,
                        model: keras.Model) -> NativeOptimizer:
        if isinstance(spec, NativeOptimizerSpec):
            return native_lib.adopt_optimizer(spec, model)
        with tf.device(self._device):
            return NativeOptimizer(spec, optimizers.build(spec, model.trainable_variables))

    def set_learning_rate(self, optimizer: NativeOptimizer, lr: float) -> NativeOptimizer:
        optimizers.set_learning_rate(optimizer.native, lr)
        return optimizer

    def to_device(self, array: np.ndarray) -> tf.Tensor:
        if array.ndim == 4:  # canonical NCHW -> NHWC; a free view when C == 1
            array = array.transpose(0, 2, 3, 1)
        with tf.device(self._device):
            return tf.convert_to_tensor(array)

    def to_numpy(self, tensor: tf.Tensor) -> np.ndarray:
        return np.array(tensor.numpy())  # a copy the caller owns

    def seed(self, seed: int) -> None:
        tf.random.set_seed(seed)

    # -- the phases -----------------------------------------------------------
    def forward(self, model: keras.Model, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return model(x, training=training)

    def loss(self, spec: losses.Loss | NativeLoss, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        if isinstance(spec, NativeLoss):  # Keras's order: (y_true, y_pred)
            return spec.fn(y, logits)
        if isinstance(spec, losses.CrossEntropy):  # (N, C) or (N, T, C): classes on the last axis
            if not spec.label_smoothing:
                return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.cast(y, tf.int64), logits=logits))
            e, classes = spec.label_smoothing, logits.shape[-1]  # torch's smoothed target
            target = tf.one_hot(y, classes, dtype=logits.dtype) * (1 - e) + e / classes
            return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))
        if isinstance(spec, losses.MSE):
            return tf.reduce_mean(tf.square(logits - y))
        if isinstance(spec, losses.L1):
            return tf.reduce_mean(tf.abs(logits - y))
        if isinstance(spec, losses.SmoothL1):  # torch's beta (Keras's Huber delta scales by it)
            d = tf.abs(logits - y)
            if spec.beta == 0:
                return tf.reduce_mean(d)
            return tf.reduce_mean(tf.where(d < spec.beta, 0.5 * d * d / spec.beta, d - 0.5 * spec.beta))
        if isinstance(spec, losses.BCEWithLogits):
            return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
        raise TypeError(f"the tensorflow backend has no loss {spec!r}")

    def gradients(self, model: keras.Model, loss: losses.Loss, x: tf.Tensor,
                  y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        return self._weighted_gradients(model, loss, x, y, 1.0)

    def _weighted_gradients(self, model: keras.Model, loss: losses.Loss, x: tf.Tensor,
                            y: tf.Tensor,
                            weight: float) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        """:meth:`gradients` of the loss times ``weight`` (a data-parallel replica's share
        of the global batch); the loss returned is unweighted, for the metrics."""
        with tf.GradientTape() as tape:
            logits = self.forward(model, x, training=True)
            value = self.loss(loss, logits, y)
            weighted = value if weight == 1.0 else value * tf.constant(weight, value.dtype)
        grads = tape.gradient(weighted, model.trainable_variables)
        # An embedding's gradient comes as IndexedSlices (rows looked up); crossloop's
        # phases (clipping, the update, canonical gradients) take dense tensors, as torch's.
        return value, logits, [tf.convert_to_tensor(g) for g in grads]

    def apply_gradients(self, optimizer: NativeOptimizer, model: keras.Model,
                        grads: list[tf.Tensor]) -> tuple[NativeOptimizer, keras.Model]:
        grads = optimizers.clip_by_global_norm(grads, optimizer.clip_norm)
        optimizer.native.apply_gradients(zip(grads, model.trainable_variables))
        return optimizer, model

    # -- native models: layer calls, for transfer_weights and compare_models ---
    def trace_layers(self, model: keras.Model, x: tf.Tensor,
                     training: bool = False) -> list[LayerRecord]:
        """One forward pass, recording each leaf layer call (``crossloop.tracing``)."""
        with tf.device(self._device):
            return tracing.trace_layers(model, x, training)

    # -- metrics (update/results/reset/sums: BaseBackend) -----------------------
    def metrics(self, grad_norm: bool = False) -> Metrics:
        return Metrics(self._device, grad_norm)

    # -- fused steps ----------------------------------------------------------
    def train_step(self, model: keras.Model, optimizer: NativeOptimizer, loss: losses.Loss,
                   metrics: Metrics, x: tf.Tensor,
                   y: tf.Tensor) -> tuple[keras.Model, NativeOptimizer, Metrics]:
        def step(x, y):  # BaseBackend's composition of the phases, traced into one graph
            super(TensorFlowBackend, self).train_step(model, optimizer, loss, metrics, x, y)

        self._run(metrics, ("train", id(model), id(optimizer), loss), step, x, y)
        return model, optimizer, metrics

    def eval_step(self, model: keras.Model, loss: losses.Loss, metrics: Metrics,
                  x: tf.Tensor, y: tf.Tensor) -> Metrics:
        def step(x, y):
            super(TensorFlowBackend, self).eval_step(model, loss, metrics, x, y)

        self._run(metrics, ("eval", id(model), loss), step, x, y)
        return metrics

    def _run(self, metrics: Metrics, key: tuple, step, x: tf.Tensor, y: tf.Tensor) -> None:
        """Run ``step`` as one ``tf.function``, traced once per (model, optimizer, loss)
        and input shapes and cached on the accumulators it updates.

        The trace (a concrete function) is called directly: that skips the matching
        of the arguments against the traces that a ``tf.function`` call does, about
        0.1 ms a step on a small CPU, several percent of a small model's step.
        """
        with tf.device(self._device):
            if not self.compile:
                step(x, y)
                return
            signature = (key, x.shape, x.dtype, y.shape, y.dtype)
            traced = metrics.compiled.get(signature)
            if traced is None:
                if key not in metrics.compiled:
                    # autograph=False: the step has no tensor-dependent Python control
                    # flow to convert, and converting a closure only slows tracing.
                    metrics.compiled[key] = tf.function(step, jit_compile=self.jit_compile,
                                                        reduce_retracing=self.reduce_retracing,
                                                        autograph=False)
                traced = metrics.compiled[key].get_concrete_function(x, y)
                metrics.compiled[signature] = traced
            traced(x, y)

    # -- canonical layout (hooks of BaseBackend) --------------------------------
    _to_canonical = staticmethod(model_lib.to_canonical)
    _to_native = staticmethod(model_lib.to_native)
    _param_table = staticmethod(model_lib.param_table)

    def _trainable_names(self, model: keras.Model) -> list[str]:
        names = {id(v): name for name, v in model_lib.param_table(model)}
        return [names[id(v)] for v in model.trainable_variables]

    @staticmethod
    def _assign(variable: tf.Variable, value: np.ndarray) -> None:
        variable.assign(value)

    def _slots(self, optimizer: NativeOptimizer, model: keras.Model) -> dict[str, tf.Variable]:
        if isinstance(optimizer.spec, NativeOptimizerSpec):
            return native_lib.get_state(optimizer, model)
        return optimizers.get_state(optimizer, self._optimized_table(model))

    def _load_slots(self, optimizer: NativeOptimizer, model: keras.Model,
                    state: dict[str, np.ndarray], step: int) -> None:
        if isinstance(optimizer.spec, NativeOptimizerSpec):
            return native_lib.set_state(optimizer, model, state)
        optimizers.set_state(optimizer, self._optimized_table(model), state, step)

    # -- precision --------------------------------------------------------------
    @contextlib.contextmanager
    def no_tf32(self) -> Iterator[None]:
        """Inside the block, float32 matmuls and convolutions on NVIDIA GPUs run in
        full float32, not TF32 (TensorFlow's default:
        ``tf.config.experimental.tensor_float_32_execution_enabled()`` True); parity
        runs use it. The setting is restored after."""
        saved = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            yield
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(saved)
