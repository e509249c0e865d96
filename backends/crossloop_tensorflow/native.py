"""A user's own ``keras.Model`` and Keras optimizer in crossloop's loop (see
``crossloop.native``); mirrors crossloop_torch/native.py.

Names are the variables' own paths (``"sequential/dense/kernel"``); an
optimizer's state is every variable it holds (iteration count, learning rate,
slots) by path, each in its own dtype, so a resumed run continues bit for bit.
"""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np

from crossloop.backend import NativeOptimizer
from crossloop.native import NativeOptimizerSpec


def adopt_model(model: keras.Model) -> keras.Model:
    """The model, checked to be built and to name each variable once."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"the tensorflow backend trains a keras.Model, got {type(model).__name__}")
    if not model.built or not model.variables:
        raise ValueError("the Keras model has no weights yet: build it first (start it with "
                         "keras.Input, or call it once on a batch)")
    twice = [path for path, n in Counter(v.path for v in model.variables).items() if n > 1]
    if twice:
        raise ValueError(f"the Keras model has several variables at {twice[0]!r}: give its "
                         "layers distinct names, so checkpoints can tell them apart")
    return model


def adopt_optimizer(spec: NativeOptimizerSpec, model: keras.Model) -> NativeOptimizer:
    """The user's optimizer, built on the model's trainable variables (so its state
    exists, and can be saved, before the first step)."""
    native = spec.native
    if not isinstance(native, keras.optimizers.Optimizer):
        raise TypeError(f"the tensorflow backend takes a keras.optimizers.Optimizer, got "
                        f"{type(native).__name__}")
    if not native.built:
        native.build(model.trainable_variables)
    return NativeOptimizer(spec, native)


def get_state(optimizer: NativeOptimizer, model: keras.Model) -> dict[str, keras.Variable]:
    """Every variable of the optimizer, by path."""
    return {v.path: v for v in optimizer.native.variables}


def set_state(optimizer: NativeOptimizer, model: keras.Model,
              state: dict[str, np.ndarray]) -> None:
    """Assign the optimizer's variables from :func:`get_state`'s arrays."""
    for path, variable in get_state(optimizer, model).items():
        variable.assign(np.asarray(state[path]).astype(variable.dtype))
