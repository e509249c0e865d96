"""Leaf layer specs: what each layer computes (torch's meaning), its output shape, and
the tensors it owns in canonical layout.

Every spec is a small frozen dataclass with two methods the containers use:
``output_shape(shape)`` (per-sample shapes, batch axis left out; raises
``ValueError`` saying what it expects) and ``tensors()`` (local name ->
:class:`Tensor`, in torch's ``state_dict`` order). Shapes are torch's: images
(C, H, W), sequences (T, E).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import get_args

from .base import Shape, SizedLayer, Tensor, positive


def _affine(out: int, fan_in: int, kernel: Shape, bias: bool) -> dict[str, Tensor]:
    fan = (fan_in, out * math.prod(kernel[2:]))
    tensors = {"weight": Tensor(kernel, "weight", fan)}
    if bias:
        tensors["bias"] = Tensor((out,), "bias", fan)
    return tensors


def _image(shape: Shape, channels: int | None = None) -> Shape:
    if len(shape) != 3 or (channels is not None and shape[0] != channels):
        c = "C" if channels is None else f"C={channels}"
        raise ValueError(f"expects ({c}, H, W) input, got {shape}")
    return shape


def _pooled(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


@dataclass(frozen=True)
class Conv2d(SizedLayer):
    """2-D convolution. ``padding``: symmetric zero padding in pixels, or ``"same"``
    (output size = input size; stride 1 only, as in torch). ``bias=False`` for a
    conv followed by BatchNorm."""
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int | str = 0
    bias: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.padding, str) and (self.padding != "same" or self.stride != 1):
            raise ValueError(f"Conv2d padding={self.padding!r}: only 'same' at stride 1 "
                             "(torch's rule), or a number of pixels")
        if not isinstance(self.padding, str) and not (
                isinstance(self.padding, numbers.Integral) and self.padding >= 0):
            raise ValueError(f"Conv2d padding must be an int >= 0 or 'same', got {self.padding!r}")

    def output_shape(self, shape: Shape) -> Shape:
        c, h, w = _image(shape, self.in_channels)
        if self.padding == "same":
            return (self.out_channels, h, w)
        k, s, p = self.kernel_size, self.stride, self.padding
        return (self.out_channels, _pooled(h + 2 * p, k, s), _pooled(w + 2 * p, k, s))

    def tensors(self) -> dict[str, Tensor]:
        k = self.kernel_size
        return _affine(self.out_channels, self.in_channels * k * k,
                       (self.out_channels, self.in_channels, k, k), self.bias)


@dataclass(frozen=True)
class Linear(SizedLayer):
    """Fully connected layer on the last axis of any input (as torch's), weight
    (out_features, in_features)."""
    in_features: int
    out_features: int
    bias: bool = True

    def output_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.in_features:
            wanted = f"({self.in_features},)" if len(shape) <= 1 else f"(..., {self.in_features})"
            raise ValueError(f"expects {wanted} input, got {shape}; set "
                             f"in_features={shape[-1] if shape else 1}"
                             + (f" or add a Flatten (in_features={math.prod(shape)})"
                                if len(shape) > 1 else ""))
        return (*shape[:-1], self.out_features)

    def tensors(self) -> dict[str, Tensor]:
        return _affine(self.out_features, self.in_features,
                       (self.out_features, self.in_features), self.bias)


@dataclass(frozen=True)
class _Elementwise(SizedLayer):
    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def tensors(self) -> dict[str, Tensor]:
        return {}


@dataclass(frozen=True)
class ReLU(_Elementwise):
    """Elementwise max(x, 0)."""


@dataclass(frozen=True)
class Tanh(_Elementwise):
    """Elementwise tanh."""


@dataclass(frozen=True)
class Sigmoid(_Elementwise):
    """Elementwise 1 / (1 + exp(-x))."""


@dataclass(frozen=True)
class SiLU(_Elementwise):
    """Elementwise x * sigmoid(x) (swish)."""


@dataclass(frozen=True)
class GELU(_Elementwise):
    """x * Phi(x): ``approximate="none"`` the exact erf form (torch's default),
    ``"tanh"`` the tanh approximation."""
    approximate: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.approximate not in ("none", "tanh"):
            raise ValueError(f"GELU approximate must be 'none' or 'tanh', got {self.approximate!r}")


@dataclass(frozen=True)
class Dropout(_Elementwise):
    """Zero each activation with probability ``p`` during training.

    Masks come from each framework's own RNG, so they differ between backends:
    parity runs use ``p=0`` (see docs/framework-differences.md).
    """
    p: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.p, numbers.Real) and 0 <= self.p < 1):
            raise ValueError(f"Dropout p must be in [0, 1), got {self.p!r} (p=1 drops everything)")


@dataclass(frozen=True)
class _Pool2d(_Elementwise):
    kernel_size: int
    stride: int | None = None

    def output_shape(self, shape: Shape) -> Shape:
        c, h, w = _image(shape)
        k, s = self.kernel_size, self.stride or self.kernel_size
        return (c, _pooled(h, k, s), _pooled(w, k, s))


@dataclass(frozen=True)
class MaxPool2d(_Pool2d):
    """Max pooling without padding; ``stride`` defaults to ``kernel_size``."""


@dataclass(frozen=True)
class AvgPool2d(_Pool2d):
    """Average pooling without padding; ``stride`` defaults to ``kernel_size``."""


@dataclass(frozen=True)
class GlobalAvgPool2d(_Elementwise):
    """Mean over H and W: (C, H, W) -> (C,)."""

    def output_shape(self, shape: Shape) -> Shape:
        return (_image(shape)[0],)


@dataclass(frozen=True)
class Flatten(_Elementwise):
    """Flatten all features into one vector, in canonical (C, H, W) order."""

    def output_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)


@dataclass(frozen=True)
class _BatchNorm(SizedLayer):
    num_features: int
    eps: float = 1e-5
    momentum: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "eps")
        if not (isinstance(self.momentum, numbers.Real) and 0 <= self.momentum <= 1):
            raise ValueError(f"{type(self).__name__} momentum must be in [0, 1], "
                             f"got {self.momentum!r}")

    def tensors(self) -> dict[str, Tensor]:
        c = (self.num_features,)
        return {"weight": Tensor(c, "ones"), "bias": Tensor(c, "zeros"),
                "running_mean": Tensor(c, "zeros", trainable=False),
                "running_var": Tensor(c, "ones", trainable=False)}


@dataclass(frozen=True)
class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, H, W) per channel of (C, H, W) inputs, torch's
    meaning: training normalises with the biased batch variance and updates
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased*
    batch variance; evaluation uses the running statistics."""

    def output_shape(self, shape: Shape) -> Shape:
        return _image(shape, self.num_features)


@dataclass(frozen=True)
class BatchNorm1d(_BatchNorm):
    """:class:`BatchNorm2d`'s rule for (C,) or (C, L) inputs (per channel, over N and L)."""

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) not in (1, 2) or shape[0] != self.num_features:
            raise ValueError(f"expects (C={self.num_features},) or (C={self.num_features}, L) "
                             f"input, got {shape}")
        return shape


@dataclass(frozen=True)
class LayerNorm(SizedLayer):
    """Normalise the last axis (biased variance, ``eps`` inside the square root), then
    scale and shift by learned per-feature ``weight`` and ``bias``."""
    normalized_shape: int
    eps: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "eps")

    def output_shape(self, shape: Shape) -> Shape:
        if not shape or shape[-1] != self.normalized_shape:
            raise ValueError(f"expects (..., {self.normalized_shape}) input, got {shape}")
        return shape

    def tensors(self) -> dict[str, Tensor]:
        n = (self.normalized_shape,)
        return {"weight": Tensor(n, "ones"), "bias": Tensor(n, "zeros")}


@dataclass(frozen=True)
class Embedding(SizedLayer):
    """Token ids (T,) -> vectors (T, embedding_dim); weight (num_embeddings, embedding_dim)."""
    num_embeddings: int
    embedding_dim: int

    def output_shape(self, shape: Shape) -> Shape:
        return (*shape, self.embedding_dim)

    def tensors(self) -> dict[str, Tensor]:
        return {"weight": Tensor((self.num_embeddings, self.embedding_dim), "embedding")}


@dataclass(frozen=True)
class PositionalEmbedding(SizedLayer):
    """Adds a learned vector per position: (T, E) -> x + weight[:T], weight
    (max_len, E) (GPT's position embedding)."""
    max_len: int
    embedding_dim: int

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2 or shape[0] > self.max_len or shape[1] != self.embedding_dim:
            raise ValueError(f"expects (T <= {self.max_len}, {self.embedding_dim}) input, "
                             f"got {shape}")
        return shape

    def tensors(self) -> dict[str, Tensor]:
        return {"weight": Tensor((self.max_len, self.embedding_dim), "embedding")}


@dataclass(frozen=True)
class SelfAttention(SizedLayer):
    """Multi-head self-attention over (T, E) inputs, torch's ``nn.MultiheadAttention``
    (bias, no dropout, scaled by 1/sqrt(E / num_heads)); ``causal=True`` lets
    position t attend to positions <= t only. Canonical weights in torch's packed
    layout: ``in_proj_weight`` (3E, E) rows q, k, v; ``out_proj.weight`` (E, E)."""
    embed_dim: int
    num_heads: int
    causal: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embed_dim % self.num_heads:
            raise ValueError(f"SelfAttention embed_dim {self.embed_dim} is not divisible by "
                             f"num_heads {self.num_heads}")

    def output_shape(self, shape: Shape) -> Shape:
        if len(shape) != 2 or shape[1] != self.embed_dim:
            raise ValueError(f"expects (T, {self.embed_dim}) input, got {shape}")
        return shape

    def tensors(self) -> dict[str, Tensor]:
        e = self.embed_dim
        return {"in_proj_weight": Tensor((3 * e, e), "xavier", (e, 3 * e)),
                "in_proj_bias": Tensor((3 * e,), "zeros"),
                "out_proj.weight": Tensor((e, e), "weight", (e, e)),
                "out_proj.bias": Tensor((e,), "zeros")}


Leaf = (Conv2d | Linear | ReLU | Tanh | Sigmoid | SiLU | GELU | Dropout | MaxPool2d | AvgPool2d
        | GlobalAvgPool2d | Flatten | BatchNorm1d | BatchNorm2d | LayerNorm | Embedding
        | PositionalEmbedding | SelfAttention)
LEAVES = get_args(Leaf)
ELEMENTWISE = (ReLU, Tanh, Sigmoid, SiLU, GELU, Dropout)
