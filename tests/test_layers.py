"""Every layer spec on every backend: built natively, its tensors round-trip exactly
in canonical layout, and in float64 it computes torch's formula -- checked
against a NumPy reference written from the formula, to 1e-10 -- in training and
evaluation, including BatchNorm's running-statistics update."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crossloop import nn

TOL = 1e-10
RNG = np.random.default_rng(0)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _conv(x, w, b, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, _, k, _ = w.shape
    h, wd = (x.shape[2] - k) // stride + 1, (x.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], o, h, wd))
    for i in range(h):
        for j in range(wd):
            patch = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + (0 if b is None else b[None, :, None, None])


def _batchnorm(x, p, training, momentum=0.1, eps=1e-5):
    """torch's rule; returns the output and the new running statistics."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    shape = [1, -1] + [1] * (x.ndim - 2)
    mean, var = p["running_mean"], p["running_var"]
    if training:
        n = x.size // x.shape[1]
        mean, var = x.mean(axes), x.var(axes)
        stats = ((1 - momentum) * p["running_mean"] + momentum * mean,
                 (1 - momentum) * p["running_var"] + momentum * var * n / (n - 1))
    else:
        stats = (mean, var)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * p["weight"].reshape(shape) + p["bias"].reshape(shape), stats


def _attention(x, p, heads, causal):
    n, t, e = x.shape
    q, k, v = np.split(x @ p["in_proj_weight"].T + p["in_proj_bias"], 3, axis=-1)
    split = lambda a: a.reshape(n, t, heads, e // heads).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(e // heads)
    if causal:
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
    out = (_softmax(scores) @ split(v)).transpose(0, 2, 1, 3).reshape(n, t, e)
    return out @ p["out_proj.weight"].T + p["out_proj.bias"]


def _ln(x, p, eps=1e-5):
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return y * p["weight"] + p["bias"]


# name: (layer, input shape, NumPy reference f(x, local params, training) -> output)
CASES = {
    "conv_same_nobias": (nn.Conv2d(2, 3, 3, padding="same", bias=False), (2, 6, 6),
                         lambda x, p, t: _conv(x, p["weight"], None, 1, 1)),
    "conv_stride2_pad1": (nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 6, 6),
                          lambda x, p, t: _conv(x, p["weight"], p["bias"], 2, 1)),
    "linear_sequence": (nn.Linear(4, 3), (5, 4), lambda x, p, t: x @ p["weight"].T + p["bias"]),
    "linear_image_last_axis": (nn.Linear(6, 3, bias=False), (2, 5, 6),
                               lambda x, p, t: x @ p["weight"].T),
    "relu": (nn.ReLU(), (7,), lambda x, p, t: np.maximum(x, 0)),
    "dropout_p0": (nn.Dropout(0.0), (7,), lambda x, p, t: x),
    "maxpool": (nn.MaxPool2d(2), (2, 6, 6),
                lambda x, p, t: x.reshape(4, 2, 3, 2, 3, 2).max((3, 5))),
    "avgpool_stride1": (nn.AvgPool2d(2, 1), (2, 3, 3), lambda x, p, t: (
        x[:, :, :-1, :-1] + x[:, :, 1:, :-1] + x[:, :, :-1, 1:] + x[:, :, 1:, 1:]) / 4),
    "flatten_image": (nn.Flatten(), (2, 3, 4), lambda x, p, t: x.reshape(len(x), -1)),
    "tanh": (nn.Tanh(), (7,), lambda x, p, t: np.tanh(x)),
    "sigmoid": (nn.Sigmoid(), (7,), lambda x, p, t: 1 / (1 + np.exp(-x))),
    "silu": (nn.SiLU(), (7,), lambda x, p, t: x / (1 + np.exp(-x))),
    "gelu": (nn.GELU(), (7,), lambda x, p, t: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "gelu_tanh": (nn.GELU("tanh"), (7,), lambda x, p, t: 0.5 * x * (1 + np.tanh(
        math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "global_avg_pool": (nn.GlobalAvgPool2d(), (3, 4, 5), lambda x, p, t: x.mean((2, 3))),
    "batchnorm2d": (nn.BatchNorm2d(3), (3, 4, 4), lambda x, p, t: _batchnorm(x, p, t)[0]),
    "batchnorm1d": (nn.BatchNorm1d(3, eps=1e-3, momentum=0.3), (3,),
                    lambda x, p, t: _batchnorm(x, p, t, 0.3, 1e-3)[0]),
    "batchnorm1d_sequence": (nn.BatchNorm1d(3), (3, 5), lambda x, p, t: _batchnorm(x, p, t)[0]),
    "layernorm": (nn.LayerNorm(6), (4, 6), lambda x, p, t: _ln(x, p)),
    "layernorm_image": (nn.LayerNorm(5, eps=1e-3), (2, 3, 5), lambda x, p, t: _ln(x, p, 1e-3)),
    "embedding": (nn.Embedding(11, 4), (6,), lambda x, p, t: p["weight"][x]),
    "positional": (nn.PositionalEmbedding(8, 4), (5, 4), lambda x, p, t: x + p["weight"][:5]),
    "attention": (nn.SelfAttention(8, 2), (5, 8), lambda x, p, t: _attention(x, p, 2, False)),
    "attention_causal": (nn.SelfAttention(8, 4, causal=True), (5, 8),
                         lambda x, p, t: _attention(x, p, 4, True)),
}


def _model(layer, shape):
    return nn.Sequential({"layer": layer}, input_shape=shape, name="one")


def test_every_layer_has_a_case():
    assert {type(layer) for layer, _, _ in CASES.values()} == set(nn.LEAVES)


def test_flatten_keeps_chw_order_through_a_batchnorm(backend):
    """A Flatten feeding a Dense directly is handled by permuting the Dense's rows;
    through a BatchNorm1d the flattened vector itself must be in (C, H, W) order."""
    spec = nn.Sequential((nn.Flatten(), nn.BatchNorm1d(24), nn.Linear(24, 3)), input_shape=(2, 3, 4))
    assert spec.flatten_pairs() == []
    params = _random_params(spec)
    x = _inputs(None, (2, 3, 4))
    local = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("1.")}
    expected = _batchnorm(x.reshape(4, -1), local, False)[0] @ params["2.weight"].T + params["2.bias"]
    model = backend.build_model(spec, params, "float64")
    out = backend.to_numpy(backend.forward(model, backend.to_device(x)))
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL)


def _inputs(layer, shape, n=4):
    if isinstance(layer, nn.Embedding):
        return RNG.integers(0, layer.num_embeddings, (n, *shape))
    return RNG.standard_normal((n, *shape)) * 2


def _random_params(spec):
    """Initial tensors with every value non-trivial (running stats and norms too)."""
    params = nn.init_params(spec, 1, dtype="float64")
    return {k: (RNG.uniform(0.5, 1.5, v.shape) if k.endswith(("running_var", "norm.weight"))
                else v + RNG.normal(0, 0.1, v.shape)) for k, v in params.items()}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_layer_computes_torch_formula(backend, case, training):
    layer, shape, reference = CASES[case]
    spec = _model(layer, shape)
    params = _random_params(spec)
    model = backend.build_model(spec, params, "float64")
    got = backend.get_params(model)
    assert list(got) == list(spec.param_shapes())
    for name in params:
        np.testing.assert_array_equal(got[name], params[name], err_msg=name)
    x = _inputs(layer, shape)
    out = backend.to_numpy(backend.forward(model, backend.to_device(x), training=training))
    if out.ndim == 4 and backend.name == "tensorflow":  # its image activations are NHWC
        out = out.transpose(0, 3, 1, 2)
    local = {k.split(".", 1)[1]: v for k, v in params.items()}
    expected = reference(x, local, training)
    assert out.shape == expected.shape == (len(x), *spec.shapes()[-1])
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL)


@pytest.mark.parametrize("case", ["batchnorm2d", "batchnorm1d", "batchnorm1d_sequence"])
def test_batchnorm_updates_running_statistics_as_torch(backend, case):
    """momentum on the new batch, unbiased variance into running_var; eval leaves them."""
    layer, shape, _ = CASES[case]
    spec = _model(layer, shape)
    params = _random_params(spec)
    model = backend.build_model(spec, params, "float64")
    x = _inputs(layer, shape)
    backend.forward(model, backend.to_device(x), training=False)
    assert all(np.array_equal(backend.get_params(model)[k], params[k]) for k in params)
    backend.forward(model, backend.to_device(x), training=True)
    got = backend.get_params(model)
    local = {k.split(".", 1)[1]: v for k, v in params.items()}
    mean, var = _batchnorm(x, local, True, layer.momentum, layer.eps)[1]
    np.testing.assert_allclose(got["layer.running_mean"], mean, rtol=0, atol=TOL)
    np.testing.assert_allclose(got["layer.running_var"], var, rtol=0, atol=TOL)
    assert set(spec.buffers()) == {"layer.running_mean", "layer.running_var"}


def test_residual_adds_the_shortcut_and_names_like_torch(backend):
    block = nn.Residual({"conv1": nn.Conv2d(2, 4, 3, 2, 1, bias=False), "bn1": nn.BatchNorm2d(4)},
                        nn.Sequential((nn.Conv2d(2, 4, 1, 2, bias=False), nn.BatchNorm2d(4)),
                                      input_shape=None), nn.ReLU())
    spec = nn.Sequential({"block": block, "pool": nn.GlobalAvgPool2d()}, input_shape=(2, 6, 6))
    assert list(spec.param_shapes()) == [
        "block.conv1.weight", "block.bn1.weight", "block.bn1.bias", "block.bn1.running_mean",
        "block.bn1.running_var", "block.shortcut.0.weight", "block.shortcut.1.weight",
        "block.shortcut.1.bias", "block.shortcut.1.running_mean", "block.shortcut.1.running_var"]
    params = _random_params(spec)
    x = _inputs(None, (2, 6, 6))
    p = {k: v for k, v in params.items()}
    body = _batchnorm(_conv(x, p["block.conv1.weight"], None, 2, 1),
                      {k[10:]: v for k, v in p.items() if k.startswith("block.bn1.")}, False)[0]
    skip = _batchnorm(_conv(x, p["block.shortcut.0.weight"], None, 2, 0),
                      {k[17:]: v for k, v in p.items() if k.startswith("block.shortcut.1.")}, False)[0]
    expected = np.maximum(body + skip, 0).mean((2, 3))
    model = backend.build_model(spec, params, "float64")
    out = backend.to_numpy(backend.forward(model, backend.to_device(x), training=False))
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOL)


def test_shape_errors_name_the_path_and_both_shapes():
    block = nn.Sequential({"conv": nn.Conv2d(3, 4, 3)}, input_shape=None)
    with pytest.raises(ValueError, match=r"layer stage\.conv \(Conv2d\) expects \(C=3, H, W\) "
                                         r"input, got \(1, 8, 8\)"):
        nn.Sequential({"stage": block}, input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"residual r adds its body's output \(4, 6, 6\) to its "
                                         r"shortcut's \(1, 8, 8\)"):
        nn.Sequential({"r": nn.Residual((nn.Conv2d(1, 4, 3),))}, input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"input_shape=None"):
        block.shapes()
