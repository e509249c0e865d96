"""Preset model specs, and the training recipes of the published ones.

mlp and linear fit any input shape; conv1, lenet5, pytorch-mnist and
keras-mnist-convnet take 28x28 grey images; resnet20 takes any (C, H, W);
tiny-gpt takes windows of character ids.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .containers import Residual, Sequential
from .layers import (
    GELU,
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
)


def mlp(hidden: int = 128, num_classes: int = 10, input_shape: Shape = (1, 28, 28)) -> Sequential:
    """Flatten + Dense(hidden) + ReLU + Dense(num_classes): the quick-start MLP, for
    inputs of any ``input_shape`` (MNIST's by default)."""
    return Sequential((Flatten(), Linear(math.prod(input_shape), hidden), ReLU(),
                       Linear(hidden, num_classes)), input_shape=input_shape, name="mlp")


def linear(num_classes: int = 10, input_shape: Shape = (1, 28, 28)) -> Sequential:
    """Flatten + Dense(num_classes): linear (or logistic) regression on any inputs."""
    return Sequential((Flatten(), Linear(math.prod(input_shape), num_classes)),
                      input_shape=input_shape, name="linear")


def conv1(filters: int = 32, num_classes: int = 10) -> Sequential:
    """The TensorFlow custom-loop tutorial model: Conv 32 3x3 + ReLU + Flatten + Dense 10."""
    return Sequential((Conv2d(1, filters, 3), ReLU(), Flatten(),
                       Linear(filters * 26 * 26, num_classes)), name="conv1")


def lenet5(num_classes: int = 10) -> Sequential:
    """LeNet-5 with ReLU and max pooling, 28x28 inputs padded by 2 in the first conv."""
    return Sequential((
        Conv2d(1, 6, 5, padding=2), ReLU(), MaxPool2d(2),
        Conv2d(6, 16, 5), ReLU(), MaxPool2d(2),
        Flatten(), Linear(16 * 5 * 5, 120), ReLU(), Linear(120, 84), ReLU(),
        Linear(84, num_classes),
    ), name="lenet5")


def pytorch_mnist(num_classes: int = 10) -> Sequential:
    """The model of PyTorch's examples/mnist: conv 32 and 64 (3x3), max-pool 2, dropout
    0.25, fc 9216-128, dropout 0.5, fc 128-10."""
    return Sequential({"conv1": Conv2d(1, 32, 3), "relu1": ReLU(), "conv2": Conv2d(32, 64, 3),
                       "relu2": ReLU(), "pool": MaxPool2d(2), "dropout1": Dropout(0.25),
                       "flatten": Flatten(), "fc1": Linear(9216, 128), "relu3": ReLU(),
                       "dropout2": Dropout(0.5), "fc2": Linear(128, num_classes)},
                      name="pytorch-mnist")


def keras_mnist_convnet(num_classes: int = 10) -> Sequential:
    """The Keras "Simple MNIST convnet" example: conv 32 3x3, max-pool 2, conv 64 3x3,
    max-pool 2, flatten, dropout 0.5, dense 10."""
    return Sequential((Conv2d(1, 32, 3), ReLU(), MaxPool2d(2), Conv2d(32, 64, 3), ReLU(),
                       MaxPool2d(2), Flatten(), Dropout(0.5),
                       Linear(1600, num_classes)), name="keras-mnist-convnet")


def _basic_block(cin: int, cout: int, stride: int) -> Residual:
    body = {"conv1": Conv2d(cin, cout, 3, stride, 1, bias=False), "bn1": BatchNorm2d(cout),
            "relu": ReLU(), "conv2": Conv2d(cout, cout, 3, 1, 1, bias=False),
            "bn2": BatchNorm2d(cout)}
    shortcut = None if stride == 1 and cin == cout else Sequential(
        (Conv2d(cin, cout, 1, stride, bias=False), BatchNorm2d(cout)), input_shape=None)
    return Residual(Sequential(body, input_shape=None), shortcut, ReLU())


def resnet20(num_classes: int = 10, input_shape: Shape = (1, 28, 28), blocks: int = 3,
             widths: tuple[int, int, int] = (16, 32, 64)) -> Sequential:
    """He et al.'s CIFAR ResNet (ResNet-20 with 3 blocks per stage): conv 3x3 16 + BN +
    ReLU, three stages of basic blocks (16, 32, 64 channels; the 2nd and 3rd start
    with stride 2 and a 1x1-conv + BN projection shortcut), global average pooling,
    fc. Any (C, H, W) input: CIFAR-10 is (3, 32, 32), MNIST (1, 28, 28)."""
    layers: dict[str, Any] = {"conv1": Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False),
                              "bn1": BatchNorm2d(widths[0]), "relu": ReLU()}
    cin = widths[0]
    for stage, width in enumerate(widths, 1):
        layers[f"layer{stage}"] = Sequential(
            [_basic_block(cin if i == 0 else width, width, 2 if i == 0 and stage > 1 else 1)
             for i in range(blocks)], input_shape=None)
        cin = width
    layers.update(pool=GlobalAvgPool2d(), fc=Linear(cin, num_classes))
    return Sequential(layers, input_shape=input_shape, name="resnet20")


def _gpt_block(dim: int, heads: int) -> Sequential:
    attn = Residual(Sequential({"ln": LayerNorm(dim), "attn": SelfAttention(dim, heads, True)},
                               input_shape=None))
    mlp_ = Residual(Sequential({"ln": LayerNorm(dim), "fc": Linear(dim, 4 * dim), "gelu": GELU(),
                                "proj": Linear(4 * dim, dim)}, input_shape=None))
    return Sequential({"attn": attn, "mlp": mlp_}, input_shape=None)


def tiny_gpt(num_classes: int = 96, input_shape: Shape = (64,), dim: int = 64, heads: int = 4,
             layers: int = 2) -> Sequential:
    """A character-level decoder-only transformer: token + learned position
    embeddings, ``layers`` pre-LayerNorm blocks (causal self-attention, GELU MLP of
    4x width, each residual), final LayerNorm, linear head over ``num_classes``
    tokens. Inputs: windows of ``input_shape = (T,)`` token ids; logits (T, C)."""
    return Sequential({"wte": Embedding(num_classes, dim),
                       "wpe": PositionalEmbedding(input_shape[0], dim),
                       "h": Sequential([_gpt_block(dim, heads) for _ in range(layers)],
                                       input_shape=None),
                       "ln_f": LayerNorm(dim), "head": Linear(dim, num_classes)},
                      input_shape=tuple(input_shape), name="tiny-gpt")


PRESETS: dict[str, Callable[..., Sequential]] = {
    "mlp": mlp, "linear": linear, "conv1": conv1, "lenet5": lenet5,
    "pytorch-mnist": pytorch_mnist, "keras-mnist-convnet": keras_mnist_convnet,
    "resnet20": resnet20, "tiny-gpt": tiny_gpt}

# The published training setups (crossloop train settings): optimizer, learning rate,
# schedule, batch size and epochs as their sources document them.
RECIPES: dict[str, dict[str, Any]] = {
    # PyTorch examples/mnist: Adadelta lr 1.0, StepLR(step_size=1 epoch, gamma=0.7), batch 64
    "pytorch-mnist": {"optimizer": "adadelta", "lr": 1.0, "schedule": "step", "gamma": 0.7,
                      "batch_size": 64, "epochs": 14},
    # Keras "Simple MNIST convnet": Adam (Keras defaults, lr 1e-3), batch 128, 15 epochs
    "keras-mnist-convnet": {"optimizer": "adam", "lr": 1e-3, "schedule": "constant",
                            "batch_size": 128, "epochs": 15},
    # He et al. 2016 (CIFAR): SGD momentum 0.9, weight decay 1e-4, lr 0.1, batch 128
    "resnet20": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                 "schedule": "cosine", "batch_size": 128, "epochs": 1},
    # nanoGPT-style: AdamW, clipping at 1.0, linear warmup then cosine decay
    "tiny-gpt": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1, "clip_norm": 1.0,
                 "schedule": "cosine", "warmup_steps": 100, "batch_size": 32, "epochs": 1,
                 "dataset": "python-stdlib", "seq_len": 64},
}


def preset(name: str) -> Sequential:
    """A preset model spec by name (see :data:`PRESETS`), with its defaults."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; presets: {', '.join(PRESETS)}") from None
