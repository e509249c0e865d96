"""One layer call of a native model, as a backend traces it: the common currency of
:func:`crossloop.transfer.transfer_weights` and :func:`crossloop.compare.compare_models`.

A backend's ``trace_layers(model, x, training)`` runs one forward pass and
returns a :class:`LayerRecord` per call of a leaf layer, in execution order.
Each record says what the layer is in crossloop's words (``kind``, a
``config`` in torch's conventions; kinds are ``conv2d``, ``linear``, ``batchnorm``,
``layernorm``, ``embedding``, ``attention``, the activations (``ACTIVATIONS``),
``flatten``, ``pad``, ``maxpool``, ``avgpool``, ``dropout``, ``add``, else
``other:<class>``), which of the model's tensors it owns
(``params``, native names), how those convert to canonical roles and back
(torch's parameter names and layout: ``weight`` OIHW or (out, in),
``running_mean``, ``in_proj_weight`` ...), and the call's first input and its
output in canonical layout (NCHW, Flatten in C, H, W order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
# The activation kinds: a Keras activation fused into a Dense or Conv2D is traced as
# a call of its own, so it pairs with the torch port's activation module.
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "silu", "softmax")


@dataclass(eq=False)
class LayerRecord:
    """One traced layer call. ``to_canonical`` maps the layer's native tensors (by
    native name) to canonical roles; ``to_native`` maps canonical roles back.
    Records compare by identity: two calls are never the same record."""
    name: str
    kind: str
    config: dict[str, Any]
    params: tuple[str, ...]
    to_canonical: Callable[[Mapping[str, np.ndarray]], Arrays] = field(repr=False)
    to_native: Callable[[Mapping[str, np.ndarray]], Arrays] = field(repr=False)
    input: np.ndarray | None = field(default=None, repr=False)
    output: np.ndarray | None = field(default=None, repr=False)

    def canonical(self, tensors: Mapping[str, np.ndarray]) -> Arrays:
        """This layer's tensors, picked out of a model's ``tensors`` (native names), in
        canonical roles and layout."""
        return self.to_canonical({name: tensors[name] for name in self.params})

    def shapes(self, tensors: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return {role: tuple(v.shape) for role, v in self.canonical(tensors).items()}

