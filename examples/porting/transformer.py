"""A small transformer classifier written natively in PyTorch (Embedding, pre-norm
block with LayerNorm, multi-head attention and a GELU MLP), its faithful Keras
port, and the port with planted bugs (``bug=``): the gallery of ``docs/porting.md``.

A faithful port needs LayerNormalization(epsilon=1e-5) (Keras: 1e-3) and the
exact GELU by torch's formula, :func:`gelu` below: ``keras.ops.gelu`` defaults
to the tanh approximation, and the exact ``"gelu"`` activation runs
TensorFlow's Gelu kernel, which in float64 differs from the erf formula by up
to 5e-9 (measured) -- over the 1e-10 a float64 comparison allows.
transfer_weights maps nn.MultiheadAttention's packed ``in_proj_weight``
(3E, E) onto MultiHeadAttention's per-head (E, H, D) kernels.
"""

from __future__ import annotations

import keras
import numpy as np
import torch
from torch import nn

from crossloop.transfer import transfer_weights

VOCAB, DIM, HEADS, CLASSES = 32, 16, 4, 10


class TinyTransformer(nn.Module):
    """Tokens -> Embedding -> x + Attention(LN(x)) -> x + MLP(LN(x)) -> mean -> Linear."""

    def __init__(self, vocab: int = VOCAB, dim: int = DIM, heads: int = HEADS,
                 classes: int = CLASSES):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
        return self.head(x.mean(1))


def torch_transformer(dtype: str = "float64", seed: int = 0) -> TinyTransformer:
    torch.manual_seed(seed)
    return TinyTransformer().to(getattr(torch, dtype))


def gelu(x):
    """torch's exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))), in Keras ops."""
    return 0.5 * x * (1 + keras.ops.erf(x * 0.7071067811865476))


class KerasTransformer(keras.Model):
    """The port of :class:`TinyTransformer`, layer for layer, in torch's call order."""

    def __init__(self, bug: str | None = None, dtype: str = "float64", **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        L, kw = keras.layers, {"dtype": dtype}
        eps = {} if bug == "ln_default_eps" else {"epsilon": 1e-5}
        self.embed = L.Embedding(VOCAB, DIM, name="embed", **kw)
        self.ln1 = L.LayerNormalization(name="ln1", **eps, **kw)
        self.attn = L.MultiHeadAttention(HEADS, DIM // HEADS, name="attn", **kw)
        self.ln2 = L.LayerNormalization(name="ln2", **eps, **kw)
        self.fc1 = L.Dense(4 * DIM, name="fc1", **kw)
        # keras.ops.gelu defaults to approximate=True
        self.act = L.Activation(keras.ops.gelu if bug == "gelu_tanh" else gelu, name="act", **kw)
        self.fc2 = L.Dense(DIM, name="fc2", **kw)
        self.head = L.Dense(CLASSES, name="head", **kw)

    def call(self, tokens, training=False):
        x = self.embed(tokens)
        h = self.ln1(x)
        x = x + self.attn(h, h, training=training)
        x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
        return self.head(keras.ops.mean(x, axis=1))


def keras_transformer(dtype: str = "float64", bug: str | None = None, seed: int = 0,
                      tokens: int = 6) -> KerasTransformer:
    """The Keras port, built (on a batch of ``tokens`` token ids) with its own weights."""
    keras.utils.set_random_seed(seed)
    model = KerasTransformer(bug=bug, dtype=dtype)
    model(np.zeros((1, tokens), "int64"))
    return model


def port_with_heads_in_wrong_order(torch_model: TinyTransformer, keras_model: KerasTransformer,
                                   inputs: np.ndarray) -> None:
    """A hand-written weight copy with a classic bug: the packed (3E, E) projections
    are split into heads as (D, H) instead of (H, D), so each Keras head mixes
    rows of every torch head."""
    transfer_weights(torch_model, keras_model, inputs=inputs)   # everything else right
    w = torch_model.attn.in_proj_weight.detach().numpy()
    b = torch_model.attn.in_proj_bias.detach().numpy()
    d = DIM // HEADS
    for i, dense in enumerate((keras_model.attn._query_dense, keras_model.attn._key_dense,
                               keras_model.attn._value_dense)):
        rows = w[i * DIM:(i + 1) * DIM]
        dense.kernel.assign(rows.reshape(d, HEADS, DIM).transpose(2, 1, 0))
        dense.bias.assign(b[i * DIM:(i + 1) * DIM].reshape(d, HEADS).T)
