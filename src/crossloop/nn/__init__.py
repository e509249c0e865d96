"""Neutral model specs: layers, containers, shape inference, NumPy initialisation, presets.

A model is a tree of small frozen specs (:class:`Sequential` and
:class:`Residual` containers around leaf layers). Each backend builds its
native model from the spec; crossloop draws the initial tensors itself, in
NumPy, so the same seed gives bit-identical starting weights on every backend.

Canonical layout (PyTorch's): activations NCHW, conv kernels OIHW, dense
weights (out, in), Flatten in (C, H, W) order, attention in
``nn.MultiheadAttention``'s packed layout, sequence logits (T, C) per sample.
Tensor names are the dotted module paths of the torch model crossloop builds,
as in its ``state_dict`` (``"7.weight"``, ``"layer1.0.bn1.running_mean"``). A
model's tensors are its trainable parameters and its non-trainable state
(:meth:`Sequential.buffers`); both travel together under these names.
"""

from .containers import (
    Layer,
    Residual,
    Sequential,
    ShapeError,
    children,
    count_params,
    output_shape,
    without_dropout,
)
from .init import DTYPES, INITS, check_inputs, check_params, init_params
from .layers import (
    ELEMENTWISE,
    GELU,
    LEAVES,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2d,
    LayerNorm,
    Linear,
    MaxPool2d,
    PositionalEmbedding,
    ReLU,
    SelfAttention,
    Shape,
    Sigmoid,
    SiLU,
    Tanh,
    Tensor,
)
from .presets import (
    PRESETS,
    RECIPES,
    conv1,
    keras_mnist_convnet,
    lenet5,
    linear,
    mlp,
    preset,
    pytorch_mnist,
    resnet20,
    tiny_gpt,
)

__all__ = [
    "DTYPES", "ELEMENTWISE", "GELU", "INITS", "LEAVES", "PRESETS", "RECIPES", "AvgPool2d",
    "BatchNorm1d", "BatchNorm2d", "Conv2d", "Dropout", "Embedding", "Flatten", "GlobalAvgPool2d",
    "Layer", "LayerNorm", "Linear", "MaxPool2d", "PositionalEmbedding", "ReLU", "Residual",
    "SelfAttention", "Sequential", "Shape", "ShapeError", "SiLU", "Sigmoid", "Tanh", "Tensor", "check_inputs",
    "check_params", "children", "conv1", "count_params", "init_params", "keras_mnist_convnet",
    "lenet5", "linear", "mlp", "output_shape", "preset", "pytorch_mnist", "resnet20", "tiny_gpt",
    "without_dropout",
]
