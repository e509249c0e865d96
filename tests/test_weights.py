"""Portable weights: safetensors in canonical layout, loadable on any backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

import crossloop
from crossloop import checkpoint, get_backend, losses, nn, optim, storage

pytest.importorskip("safetensors")

SPEC = nn.Sequential((nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(3 * 4 * 4, 5)), input_shape=(1, 8, 8), name="tiny")


def _trained_on_torch(steps: int = 3) -> dict[str, np.ndarray]:
    """Parameters after a few Adam steps on torch, so they are not the initial ones."""
    b = get_backend("torch", device="cpu")
    model = b.build_model(SPEC, nn.init_params(SPEC, 1, dtype="float64"), "float64")
    opt = b.build_optimizer(optim.Adam(0.05), model)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x, y = rng.normal(size=(16, 1, 8, 8)), rng.integers(0, 5, 16)
        _, _, grads = b.gradients(model, losses.CrossEntropy(), b.to_device(x), b.to_device(y))
        opt, model = b.apply_gradients(opt, model, grads)
    return b.get_params(model)


def test_save_load_keeps_values_dtypes_order_and_header(tmp_path):
    params = nn.init_params(SPEC, 0, dtype="float64")
    params["4.bias"] = params["4.bias"].astype("float32")  # mixed dtypes survive
    path = crossloop.save_params(tmp_path / "w.safetensors", params, SPEC)
    loaded, header = crossloop.load_params(path, SPEC)
    assert list(loaded) == list(params)
    for name in params:
        assert loaded[name].dtype == params[name].dtype
        np.testing.assert_array_equal(loaded[name], params[name])
    assert header["format"] == "crossloop.params/1"
    assert header["spec"] == SPEC.describe()
    assert "OIHW" in header["layout"]
    assert not list(tmp_path.glob("*.tmp"))  # written via a temporary file, renamed into place


def test_file_is_plain_safetensors_with_a_json_header(tmp_path):
    """Any safetensors reader sees the tensors; nothing in the file is pickle."""
    from safetensors.numpy import load_file
    path = crossloop.save_params(tmp_path / "w.safetensors", nn.init_params(SPEC, 0), SPEC)
    assert set(load_file(str(path))) == set(SPEC.param_shapes())
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert json.loads(header["__metadata__"]["crossloop"])["spec"]["name"] == "tiny"
    assert b"\x80\x04" not in raw[:16]  # no pickle protocol header


def test_torch_tensorflow_torch_round_trip_is_exact_with_the_same_logits(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    torch_b, tf_b = get_backend("torch", device="cpu"), get_backend("tensorflow", device="cpu")
    trained = _trained_on_torch()
    crossloop.save_params(tmp_path / "torch.safetensors", trained, SPEC)

    params, _ = crossloop.load_params(tmp_path / "torch.safetensors", SPEC)
    tf_model = tf_b.build_model(SPEC, params, "float64")
    crossloop.save_params(tmp_path / "tf.safetensors", tf_b.get_params(tf_model), SPEC)
    back, _ = crossloop.load_params(tmp_path / "tf.safetensors", SPEC)
    torch_model = torch_b.build_model(SPEC, back, "float64")

    for name, value in trained.items():
        np.testing.assert_array_equal(torch_b.get_params(torch_model)[name], value)
    x = np.random.default_rng(3).normal(size=(4, 1, 8, 8))
    logits_torch = torch_b.to_numpy(torch_b.forward(torch_model, torch_b.to_device(x)))
    logits_tf = tf_b.to_numpy(tf_b.forward(tf_model, tf_b.to_device(x)))
    np.testing.assert_allclose(logits_tf, logits_torch, rtol=0, atol=1e-12)


def test_load_params_reads_the_params_of_a_checkpoint(tmp_path):
    params = nn.init_params(SPEC, 2)
    storage.write(tmp_path / "ckpt.safetensors",
                     {**{f"params/{k}": v for k, v in params.items()},
                      "optimizer/4.bias.exp_avg": np.zeros(5)},
                     {"format": checkpoint.FORMAT, "spec": SPEC.describe()})
    loaded, header = crossloop.load_params(tmp_path / "ckpt.safetensors", SPEC)
    assert set(loaded) == set(params)
    for name in params:
        np.testing.assert_array_equal(loaded[name], params[name])
    assert header["spec"]["name"] == "tiny"


def test_errors_name_the_problem(tmp_path):
    other = nn.mlp(hidden=8)
    path = crossloop.save_params(tmp_path / "w.safetensors", nn.init_params(SPEC, 0), SPEC)
    with pytest.raises(ValueError, match="saved for model 'tiny'.*not for 'mlp'"):
        crossloop.load_params(path, other)
    with pytest.raises(ValueError, match="missing tensor '0.bias'"):
        crossloop.save_params(tmp_path / "bad.safetensors",
                              {"0.weight": np.zeros((3, 1, 3, 3))}, SPEC)
    assert not (tmp_path / "bad.safetensors").exists()
    with pytest.raises(FileNotFoundError, match="no file at"):
        crossloop.load_params(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        crossloop.load_params(tmp_path / "junk.safetensors")
    from safetensors.numpy import save_file
    save_file({"a": np.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="holds no crossloop parameters.*save_params"):
        crossloop.load_params(tmp_path / "foreign.safetensors")


def test_missing_safetensors_says_how_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"crossloop\[checkpoint\]"):
        crossloop.save_params(tmp_path / "w.safetensors", nn.init_params(SPEC, 0))
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(ImportError, match=r"crossloop\[checkpoint\]"):
        crossloop.load_params(tmp_path / "w.safetensors")
