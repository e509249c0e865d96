"""What every leaf layer spec shares: the :class:`Tensor` record of a tensor it owns,
and :class:`SizedLayer`, the base that checks a spec's sizes when it is made, so a
bad size fails at construction naming the layer and field, not later inside a
framework or the initialisation."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields

Shape = tuple[int, ...]
INIT_RULES = ("weight", "bias", "xavier", "zeros", "ones", "embedding")


@dataclass(frozen=True)
class Tensor:
    """One tensor a layer owns: canonical ``shape``; ``init``, how it is drawn (one of
    :data:`INIT_RULES`, see :func:`crossloop.nn.init_params`); ``fan`` (fan_in, fan_out)
    for the drawn ones; ``trainable`` False for model state such as running statistics."""
    shape: Shape
    init: str
    fan: tuple[int, int] = (0, 0)
    trainable: bool = True

    def __post_init__(self) -> None:
        if self.init not in INIT_RULES:
            raise ValueError(f"Tensor init {self.init!r} is not one of {', '.join(INIT_RULES)}")


@dataclass(frozen=True)
class SizedLayer:
    """A leaf spec whose sizes are checked when it is made: every ``int`` field (and
    ``int | None`` one, when given) a whole number >= 1 -- a size of 0 builds nothing
    and fails later inside a framework or the initialisation."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            sized = f.type == "int" or (f.type == "int | None" and value is not None)
            if sized and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                          or value < 1):
                raise ValueError(f"{type(self).__name__} {f.name} must be an int >= 1, "
                                     f"got {value!r}")


def positive(layer: SizedLayer, name: str) -> None:
    """Raise ValueError unless ``layer``'s field ``name`` (an epsilon) is a number > 0."""
    value = getattr(layer, name)
    if not (isinstance(value, numbers.Real) and value > 0):
        raise ValueError(f"{type(layer).__name__} {name} must be a number > 0, got {value!r}")
