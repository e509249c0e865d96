"""A small ResNet written natively in PyTorch, its faithful Keras port, and the port
with planted bugs (``bug=``): the gallery of ``docs/porting.md``.

The port mirrors torch's forward call by call (a subclassed Keras model runs in
the order its ``call`` says), keeps NHWC inside, and differs from the obvious
Keras code in three places a port must get right:

- BatchNormalization(momentum=0.9, epsilon=1e-5) with torch's running-variance
  update (unbiased batch variance; Keras updates with the biased one);
- a stride-2 3x3 convolution is ZeroPadding2D(1) + padding="valid" (Keras's
  "same" pads only the bottom and right at stride 2);
- the Dense after Flatten sees H, W, C order: transfer_weights permutes its rows.

``bug="shortcut_first"`` is a correct port that runs the shortcut before the
main branch: pairing its layers in execution order is ambiguous, and
:data:`SHORTCUT_FIRST_MAP` pairs them by name.
"""

from __future__ import annotations

import keras
import numpy as np
import torch
from torch import nn

from crossloop.transfer import transfer_weights

# -- PyTorch ------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, and a strided 1x1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem conv + BatchNorm, one strided residual block, Flatten, Linear."""

    def __init__(self, in_channels: int = 1, size: int = 28, classes: int = 10, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.block = BasicBlock(width, 2 * width, 2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width * ((size + 1) // 2) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.block(self.relu(self.bn(self.stem(x))))))


def torch_resnet(dtype: str = "float64", size: int = 8, seed: int = 0) -> SmallResNet:
    torch.manual_seed(seed)
    return SmallResNet(size=size).to(getattr(torch, dtype))


# -- Keras --------------------------------------------------------------------


class TorchBatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization updating its moving variance with the unbiased batch
    variance, as torch does (normalisation itself uses the biased one in both)."""

    def call(self, inputs, training=None, mask=None):
        if not training:
            return super().call(inputs, training=False)
        axes = [i for i in range(len(inputs.shape)) if i != self.axis % len(inputs.shape)]
        mean, var = keras.ops.moments(inputs, axes)
        n = keras.ops.cast(keras.ops.size(inputs) // inputs.shape[self.axis], var.dtype)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
        self.moving_variance.assign(self.moving_variance * m + var * n / (n - 1) * (1 - m))
        return keras.ops.batch_normalization(inputs, mean, var, axis=self.axis, offset=self.beta,
                                             scale=self.gamma, epsilon=self.epsilon)


def _bn(bug: str | None, dtype: str, name: str) -> keras.layers.Layer:
    if bug == "bn_defaults":   # Keras's momentum 0.99 and epsilon 1e-3
        return keras.layers.BatchNormalization(dtype=dtype, name=name)
    if bug == "bn_biased_variance":  # torch's momentum and eps, Keras's biased running variance
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)
    return TorchBatchNorm(momentum=0.9, epsilon=1e-5, dtype=dtype, name=name)


def _strided_conv(filters: int, bug: str | None, dtype: str, name: str) -> list:
    if bug == "same_padding":  # pads (0, 1) at stride 2, torch (1, 1)
        return [keras.layers.Conv2D(filters, 3, 2, padding="same", use_bias=False, dtype=dtype,
                                    name=name)]
    return [keras.layers.ZeroPadding2D(1, dtype=dtype, name=f"{name}_pad"),
            keras.layers.Conv2D(filters, 3, 2, padding="valid", use_bias=False, dtype=dtype,
                                name=name)]


class KerasResNet(keras.Model):
    """The port of :class:`SmallResNet`, layer for layer, in torch's call order."""

    def __init__(self, classes: int = 10, width: int = 8, bug: str | None = None,
                 dtype: str = "float64", **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.bug = bug
        conv = keras.layers.Conv2D
        self.stem = conv(width, 3, padding="same", use_bias=False, dtype=dtype, name="stem")
        self.bn = _bn(bug, dtype, "bn")
        self.relu = keras.layers.ReLU(dtype=dtype, name="relu")
        self.conv1 = _strided_conv(2 * width, bug, dtype, "block_conv1")
        self.bn1 = _bn(bug, dtype, "block_bn1")
        self.relu1 = keras.layers.ReLU(dtype=dtype, name="block_relu1")
        self.conv2 = conv(2 * width, 3, padding="same", use_bias=False, dtype=dtype,
                          name="block_conv2")
        self.bn2 = _bn(bug, dtype, "block_bn2")
        self.short = conv(2 * width, 1, 2, use_bias=False, dtype=dtype, name="block_shortcut")
        self.short_bn = _bn(bug, dtype, "block_shortcut_bn")
        self.relu2 = keras.layers.ReLU(dtype=dtype, name="block_relu2")
        self.flatten = keras.layers.Flatten(dtype=dtype, name="flatten")
        self.fc = keras.layers.Dense(classes, dtype=dtype, name="fc")

    def call(self, x, training=False):
        h = self.relu(self.bn(self.stem(x), training=training))
        if self.bug == "shortcut_first":   # not a bug: a different call order to pair by map
            shortcut = self.short_bn(self.short(h), training=training)
        out = h
        for layer in self.conv1:
            out = layer(out)
        out = self.bn2(self.conv2(self.relu1(self.bn1(out, training=training))), training=training)
        if self.bug != "shortcut_first":
            shortcut = self.short_bn(self.short(h), training=training)
        out = self.relu2(out + shortcut)
        return self.fc(self.flatten(out))


def keras_resnet(dtype: str = "float64", size: int = 8, bug: str | None = None,
                 seed: int = 0) -> KerasResNet:
    """The Keras port, built (on an NHWC batch) with its own random weights."""
    keras.utils.set_random_seed(seed)
    model = KerasResNet(bug=bug, dtype=dtype)
    model(np.zeros((1, size, size, 1), dtype))
    return model


# torch layer -> Keras layer, for the port that calls its shortcut first
SHORTCUT_FIRST_MAP = {"stem": "stem", "bn": "bn", "block.conv1": "block_conv1",
                      "block.bn1": "block_bn1", "block.conv2": "block_conv2",
                      "block.bn2": "block_bn2", "block.shortcut.0": "block_shortcut",
                      "block.shortcut.1": "block_shortcut_bn", "fc": "fc"}


def port_without_flatten_permutation(torch_model: SmallResNet, keras_model: KerasResNet,
                                     inputs: np.ndarray) -> None:
    """A hand-written weight copy with the classic bug: the Dense after Flatten gets
    ``weight.T`` as is, though Keras flattens H, W, C and torch C, H, W."""
    transfer_weights(torch_model, keras_model, inputs=inputs)   # everything else right
    keras_model.fc.kernel.assign(torch_model.fc.weight.detach().numpy().T)
