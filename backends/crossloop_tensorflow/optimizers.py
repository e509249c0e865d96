"""crossloop optimizer specs as Keras optimizers that compute torch's formulas.

Keras's stock optimizers differ from crossloop's (torch's) formulas: Adam adds
its eps (default 1e-7) to the uncorrected sqrt(v), SGD keeps v = mu*v - lr*g,
weight decay is always decoupled, and clipnorm clips each tensor. These
subclasses of ``keras.optimizers.Optimizer`` implement crossloop's formulas and
are still driven by ``optimizer.apply_gradients``. The learning rate lives in a
float64 variable written from crossloop's schedule, as torch keeps it a Python
float, so float64 runs see exactly the same rate.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from crossloop import optim


class _CrossloopOptimizer(keras.optimizers.Optimizer):
    """Shared plumbing: the float64 learning-rate variable and the spec."""

    def __init__(self, spec: optim.Optimizer, name: str):
        super().__init__(learning_rate=self._current_lr, name=name)
        self.spec = spec
        self.lr_variable = tf.Variable(spec.lr(0), dtype=tf.float64, trainable=False, name="lr")

    def _current_lr(self) -> tf.Variable:
        return self.lr_variable

    def _scalars(self, variable, *values):
        """Python floats and float64 tensors in the variable's dtype, rounded once
        (``tf.cast`` of a Python float would round it to float32 first)."""
        return [tf.cast(v, variable.dtype) if tf.is_tensor(v) or isinstance(v, tf.Variable)
                else tf.constant(v, variable.dtype) for v in values]


class SGD(_CrossloopOptimizer):
    """torch.optim.SGD: g += wd*p; buf = mu*buf + g; d = g + mu*buf (nesterov) or buf; p -= lr*d."""

    def build(self, variables):
        super().build(variables)
        self.momentums = ([self.add_variable_from_reference(v, "momentum") for v in variables]
                          if self.spec.momentum else [])

    def update_step(self, gradient, variable, learning_rate):
        spec = self.spec
        lr, wd, mu = self._scalars(variable, learning_rate, spec.weight_decay, spec.momentum)
        if spec.weight_decay:
            gradient = gradient + wd * variable
        if spec.momentum:
            buf = self.momentums[self._get_variable_index(variable)]
            self.assign(buf, mu * buf + gradient)
            gradient = gradient + mu * buf if spec.nesterov else buf
        self.assign_sub(variable, lr * gradient)


class Adam(_CrossloopOptimizer):
    """torch.optim.Adam (L2 decay in the gradient) and AdamW (decoupled decay):
    m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    decoupled = False

    def build(self, variables):
        super().build(variables)
        self.exp_avgs = [self.add_variable_from_reference(v, "exp_avg") for v in variables]
        self.exp_avg_sqs = [self.add_variable_from_reference(v, "exp_avg_sq") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        spec = self.spec
        b1, b2 = spec.betas
        step = tf.cast(self.iterations + 1, tf.float64)
        bias1 = 1 - tf.pow(tf.constant(b1, tf.float64), step)
        bias2_sqrt = tf.sqrt(1 - tf.pow(tf.constant(b2, tf.float64), step))
        lr64 = tf.cast(learning_rate, tf.float64)
        lr, wd, step_size, bias2_sqrt, eps, one_b1, one_b2, b2 = self._scalars(
            variable, lr64, spec.weight_decay, lr64 / bias1, bias2_sqrt, spec.eps,
            1 - b1, 1 - b2, b2)
        if spec.weight_decay and self.decoupled:
            self.assign(variable, variable * (1 - lr * wd))
        elif spec.weight_decay:
            gradient = gradient + wd * variable
        index = self._get_variable_index(variable)
        m, v = self.exp_avgs[index], self.exp_avg_sqs[index]
        self.assign(m, m + one_b1 * (gradient - m))
        self.assign(v, v * b2 + one_b2 * (gradient * gradient))
        denom = tf.sqrt(v) / bias2_sqrt + eps
        self.assign_sub(variable, step_size * m / denom)


class AdamW(Adam):
    """torch.optim.AdamW: p *= 1 - lr*wd, then the Adam update without L2."""

    decoupled = True


def build(spec: optim.Optimizer, params: list[tf.Variable]) -> _CrossloopOptimizer:
    """The native optimizer for ``spec``, built on the model's trainable variables."""
    classes = {optim.SGD: SGD, optim.Adam: Adam, optim.AdamW: AdamW}
    if type(spec) not in classes:
        raise TypeError(f"the tensorflow backend has no optimizer for {spec!r}")
    native = classes[type(spec)](spec, name=type(spec).__name__.lower())
    native.build(params)
    return native


def set_learning_rate(optimizer: _CrossloopOptimizer, lr: float) -> None:
    """Write the scheduled learning rate into the optimizer's variable."""
    optimizer.lr_variable.assign(lr)


def get_state(optimizer: _CrossloopOptimizer,
              table: list[tuple[str, tf.Variable]]) -> dict[str, tf.Variable]:
    """Slot variables by ``"<param>.<slot>"``."""
    return {f"{name}.{slot}": _slot(optimizer, slot, variable)
            for name, variable in table for slot in optim.slots(optimizer.spec)}


def set_state(optimizer: _CrossloopOptimizer, table: list[tuple[str, tf.Variable]],
              state: dict[str, object], step: int) -> None:
    """Load slot values and the step count, as ``apply_gradients`` would have left them."""
    for name, variable in table:
        for slot in optim.slots(optimizer.spec):
            _slot(optimizer, slot, variable).assign(state[f"{name}.{slot}"])
    optimizer.iterations.assign(step)


def _slot(optimizer: _CrossloopOptimizer, slot: str, variable: tf.Variable) -> tf.Variable:
    lists = {"momentum_buffer": "momentums", "exp_avg": "exp_avgs", "exp_avg_sq": "exp_avg_sqs"}
    return getattr(optimizer, lists[slot])[optimizer._get_variable_index(variable)]


def clip_by_global_norm(grads: list[tf.Tensor], max_norm: float | None) -> list[tf.Tensor]:
    """Scale ``grads`` by min(1, max_norm / (global norm + 1e-6)), torch's rule
    (``tf.clip_by_global_norm`` divides by max(norm, max_norm) instead)."""
    if max_norm is None:
        return grads
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
    coef = tf.minimum(tf.constant(max_norm, norm.dtype) / (norm + optim.CLIP_EPS), 1)
    return [g * coef for g in grads]
