"""crossloop optimizer specs as Keras optimizers that compute torch's formulas.

Keras's stock optimizers differ from crossloop's (torch's) formulas: Adam adds
its eps (default 1e-7) to the uncorrected sqrt(v), SGD keeps v = mu*v - lr*g,
RMSprop (rho 0.9) and Adagrad (accumulator from 0.1) add eps inside the sqrt,
Adadelta defaults to lr 0.001, rho 0.95, eps 1e-7, weight decay is always
decoupled, and clipnorm clips each tensor. These subclasses of
``keras.optimizers.Optimizer`` implement crossloop's formulas and are still
driven by ``optimizer.apply_gradients``. The learning rate lives in a
float64 variable written from crossloop's schedule, as torch keeps it a Python
float, so float64 runs see exactly the same rate.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from crossloop import optim
from crossloop.backend import NativeOptimizer


class _CrossloopOptimizer(keras.optimizers.Optimizer):
    """Shared plumbing: the float64 learning-rate variable, the spec, and one slot
    variable per parameter for each of the spec's slots (``optim.slots``), under
    torch's slot names."""

    def __init__(self, spec: optim.Optimizer, name: str):
        super().__init__(learning_rate=self._current_lr, name=name)
        self.spec = spec
        self.lr_variable = tf.Variable(spec.lr(0), dtype=tf.float64, trainable=False, name="lr")

    def _current_lr(self) -> tf.Variable:
        return self.lr_variable

    def build(self, variables):
        super().build(variables)
        self.slot_variables = {slot: [self.add_variable_from_reference(v, slot, self._initial(slot))
                                      for v in variables]
                               for slot in optim.slots(self.spec)}

    def _initial(self, slot: str):
        """A slot's initial value (torch creates every slot zero, but Adagrad's sum)."""
        return "zeros"

    def slot(self, slot: str, variable) -> tf.Variable:
        """The ``slot`` variable (torch's name) of the parameter ``variable``."""
        return self.slot_variables[slot][self._get_variable_index(variable)]

    def _scalars(self, variable, *values):
        """Python floats and float64 tensors in the variable's dtype, rounded once
        (``tf.cast`` of a Python float would round it to float32 first)."""
        return [tf.cast(v, variable.dtype) if tf.is_tensor(v) or isinstance(v, tf.Variable)
                else tf.constant(v, variable.dtype) for v in values]

    def _with_l2(self, gradient, variable):
        """torch's coupled (L2) weight decay: g + wd*p, or g itself when wd is 0."""
        if not self.spec.weight_decay:
            return gradient
        wd, = self._scalars(variable, self.spec.weight_decay)
        return gradient + wd * variable


class SGD(_CrossloopOptimizer):
    """torch.optim.SGD: g += wd*p; buf = mu*buf + g; d = g + mu*buf (nesterov) or buf; p -= lr*d."""

    def update_step(self, gradient, variable, learning_rate):
        spec = self.spec
        lr, mu = self._scalars(variable, learning_rate, spec.momentum)
        gradient = self._with_l2(gradient, variable)
        if spec.momentum:
            buf = self.slot("momentum_buffer", variable)
            self.assign(buf, mu * buf + gradient)
            gradient = gradient + mu * buf if spec.nesterov else buf
        self.assign_sub(variable, lr * gradient)


class Adam(_CrossloopOptimizer):
    """torch.optim.Adam (L2 decay in the gradient) and AdamW (decoupled decay):
    m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    decoupled = False

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
        if self.decoupled:
            if spec.weight_decay:
                self.assign(variable, variable * (1 - lr * wd))
        else:
            gradient = self._with_l2(gradient, variable)
        m, v = self.slot("exp_avg", variable), self.slot("exp_avg_sq", variable)
        self.assign(m, m + one_b1 * (gradient - m))
        self.assign(v, v * b2 + one_b2 * (gradient * gradient))
        denom = tf.sqrt(v) / bias2_sqrt + eps
        self.assign_sub(variable, step_size * m / denom)


class AdamW(Adam):
    """torch.optim.AdamW: p *= 1 - lr*wd, then the Adam update without L2."""

    decoupled = True


class RMSprop(_CrossloopOptimizer):
    """torch.optim.RMSprop: g += wd*p; v = alpha*v + (1-alpha)*g^2; centered:
    a = alpha*a + (1-alpha)*g, v - a^2 for v; d = g / (sqrt(v) + eps);
    buf = mu*buf + d, p -= lr*buf (momentum) or p -= lr*d.

    Keras's RMSprop adds eps inside the sqrt and keeps lr inside its momentum buffer."""

    def update_step(self, gradient, variable, learning_rate):
        spec = self.spec
        lr, alpha, one_alpha, eps, mu = self._scalars(
            variable, learning_rate, spec.alpha, 1 - spec.alpha, spec.eps, spec.momentum)
        gradient = self._with_l2(gradient, variable)
        square_avg = self.slot("square_avg", variable)
        self.assign(square_avg, square_avg * alpha + one_alpha * (gradient * gradient))
        if spec.centered:
            grad_avg = self.slot("grad_avg", variable)
            self.assign(grad_avg, grad_avg + one_alpha * (gradient - grad_avg))
            avg = tf.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = tf.sqrt(square_avg) + eps
        direction = gradient / avg
        if spec.momentum:
            buf = self.slot("momentum_buffer", variable)
            self.assign(buf, mu * buf + direction)
            direction = buf
        self.assign_sub(variable, lr * direction)


class Adagrad(_CrossloopOptimizer):
    """torch.optim.Adagrad: g += wd*p; sum += g^2; p -= lr/(1 + (t-1)*lr_decay) *
    g / (sqrt(sum) + eps). Keras starts its accumulator at 0.1 and adds eps inside
    the sqrt."""

    def _initial(self, slot: str):
        # tf.constant in the slot's dtype: keras.initializers.Constant rounds through float32
        return lambda shape, dtype: tf.fill(shape, tf.constant(self.spec.initial_accumulator_value,
                                                                dtype))

    def update_step(self, gradient, variable, learning_rate):
        spec = self.spec
        done = tf.cast(self.iterations, tf.float64)  # t - 1
        clr, eps = self._scalars(
            variable, tf.cast(learning_rate, tf.float64) / (1 + done * spec.lr_decay), spec.eps)
        gradient = self._with_l2(gradient, variable)
        total = self.slot("sum", variable)
        self.assign(total, total + gradient * gradient)
        self.assign_sub(variable, clr * gradient / (tf.sqrt(total) + eps))


class Adadelta(_CrossloopOptimizer):
    """torch.optim.Adadelta: g += wd*p; v = rho*v + (1-rho)*g^2;
    d = sqrt(u + eps) / sqrt(v + eps) * g; u = rho*u + (1-rho)*d^2; p -= lr*d."""

    def update_step(self, gradient, variable, learning_rate):
        spec = self.spec
        lr, rho, one_rho, eps = self._scalars(variable, learning_rate, spec.rho, 1 - spec.rho,
                                              spec.eps)
        gradient = self._with_l2(gradient, variable)
        square_avg, acc_delta = self.slot("square_avg", variable), self.slot("acc_delta", variable)
        self.assign(square_avg, square_avg * rho + one_rho * (gradient * gradient))
        delta = tf.sqrt(acc_delta + eps) / tf.sqrt(square_avg + eps) * gradient
        self.assign(acc_delta, acc_delta * rho + one_rho * (delta * delta))
        self.assign_sub(variable, lr * delta)


def build(spec: optim.Optimizer, params: list[tf.Variable]) -> _CrossloopOptimizer:
    """The native optimizer for ``spec``, built on the model's trainable variables."""
    classes = {optim.SGD: SGD, optim.Adam: Adam, optim.AdamW: AdamW, optim.RMSprop: RMSprop,
               optim.Adagrad: Adagrad, optim.Adadelta: Adadelta}
    if type(spec) not in classes:
        raise TypeError(f"the tensorflow backend has no optimizer for {spec!r}")
    native = classes[type(spec)](spec, name=type(spec).__name__.lower())
    native.build(params)
    return native


def set_learning_rate(optimizer: _CrossloopOptimizer, lr: float) -> None:
    """Write the scheduled learning rate into the optimizer's variable."""
    optimizer.lr_variable.assign(lr)


def get_state(optimizer: NativeOptimizer,
              table: list[tuple[str, tf.Variable]]) -> dict[str, tf.Variable]:
    """Slot variables by ``"<param>.<slot>"``."""
    return {f"{name}.{slot}": optimizer.native.slot(slot, variable)
            for name, variable in table for slot in optim.slots(optimizer.spec)}


def set_state(optimizer: NativeOptimizer, table: list[tuple[str, tf.Variable]],
              state: dict[str, np.ndarray], step: int) -> None:
    """Load slot values (``assign`` copies them) and the step count, as
    ``apply_gradients`` would have left them."""
    for name, variable in table:
        for slot in optim.slots(optimizer.spec):
            optimizer.native.slot(slot, variable).assign(state[f"{name}.{slot}"])
    optimizer.native.iterations.assign(step)


def clip_by_global_norm(grads: list[tf.Tensor], max_norm: float | None) -> list[tf.Tensor]:
    """Scale ``grads`` by min(1, max_norm / (global norm + 1e-6)), torch's rule
    (``tf.clip_by_global_norm`` divides by max(norm, max_norm) instead)."""
    if max_norm is None:
        return grads
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
    coef = tf.minimum(tf.constant(max_norm, norm.dtype) / (norm + optim.CLIP_EPS), 1)
    return [g * coef for g in grads]
