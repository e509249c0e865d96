"""``crossloop export``: the exported PyTorch and Keras files, imported as ordinary
modules, load crossloop's weights and compute what crossloop's backends compute."""

from __future__ import annotations

import ast
import importlib.util
import sys
import textwrap

import numpy as np
import pytest

from crossloop import commands, export, get_backend, nn, save_params

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")

SPECS = {name: nn.preset(name) for name in nn.PRESETS} | {
    # explicit padding at stride 2 (Keras's "same" would differ), average pooling,
    # dropout (the identity in inference), a Flatten not followed by a Linear at once
    "strided": nn.Sequential((nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                              nn.AvgPool2d(2, stride=1), nn.Dropout(0.5), nn.Flatten(),
                              nn.Dropout(0.25), nn.Linear(4 * 5 * 5, 7)),
                             input_shape=(3, 12, 12), name="strided-net"),
    # torch's BatchNorm momentum and eps (not Keras's), LayerNorm's eps, both GELUs
    "norms": nn.Sequential((nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(),
                            nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.BatchNorm1d(6, eps=1e-3),
                            nn.LayerNorm(6, eps=1e-6), nn.GELU(), nn.Linear(6, 4),
                            nn.GELU("tanh")),
                           input_shape=(2, 6, 6), name="norms"),
    # small enough to check quickly: residual blocks with and without a projection,
    # nested in a residual body, BatchNorm1d over (C, L), a Flatten that must permute
    "blocks": nn.Sequential({
        "stem": nn.Conv2d(2, 4, 3, padding="same"),
        "block": nn.Residual(nn.Sequential({
            "inner": nn.Residual(nn.Sequential((nn.Conv2d(4, 4, 3, padding=1), nn.Tanh()),
                                               input_shape=None)),
            "down": nn.Conv2d(4, 6, 3, stride=2, padding=1), "bn": nn.BatchNorm2d(6)},
            input_shape=None),
            nn.Sequential((nn.Conv2d(4, 6, 1, stride=2, bias=False),), input_shape=None),
            nn.SiLU()),
        "flat": nn.Flatten(), "bn": nn.BatchNorm1d(6 * 4 * 4), "fc": nn.Linear(96, 3)},
        input_shape=(2, 8, 8), name="blocks"),
    # attention without the causal mask, on features that are not token ids
    "attention": nn.Sequential({"pos": nn.PositionalEmbedding(7, 8),
                                "attn": nn.SelfAttention(8, 2), "sig": nn.Sigmoid(),
                                "bn": nn.BatchNorm1d(5)},
                               input_shape=(5, 8), name="attention"),
}


def import_file(path):
    """The file as a module, imported the ordinary way (not through crossloop)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def perturbed(params):
    """The tensors that start constant (BatchNorm's running statistics and affine, LayerNorm's,
    zero biases) made to vary, as after training: constants would hide a tensor loaded in
    the wrong place or order. Running variances stay positive."""
    rng = np.random.default_rng(1)
    return {name: value if value.size > 1 and np.ptp(value) > 0
            else rng.uniform(0.5, 2.0, value.shape) if name.endswith("running_var")
            else value + 0.2 * rng.standard_normal(value.shape)
            for name, value in params.items()}


@pytest.fixture(scope="module")
def pair():
    return [get_backend("torch", device="cpu"), get_backend("tensorflow", device="cpu")]


@pytest.mark.parametrize("name", SPECS)
def test_exported_models_compute_what_crossloop_computes(tmp_path, pair, name):
    spec = SPECS[name]
    torch_file, keras_file = export.write(spec, tmp_path)
    for path in (torch_file, keras_file):  # ordinary code: no crossloop import
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not [m for m in imported if m.split(".")[0] == "crossloop"], path
    params = perturbed(nn.init_params(spec, 3, dtype="float64"))
    rng = np.random.default_rng(0)
    first = spec.leaves()[0][1]
    x = (rng.integers(0, first.num_embeddings, (5, *spec.input_shape))
         if isinstance(first, nn.Embedding) else rng.standard_normal((5, *spec.input_shape)))

    torch_module = import_file(torch_file)
    native_torch = torch_module.load_weights(getattr(torch_module, export.class_name(spec))()
                                             .double().eval(), params)
    with torch.no_grad():
        torch_out = native_torch(torch.from_numpy(x)).numpy()
    keras_module = import_file(keras_file)
    native_keras = keras_module.load_weights(keras_module.build_model("float64"), params)
    nhwc = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x
    keras_out = np.asarray(native_keras(nhwc, training=False))

    for backend in pair:
        model = backend.build_model(spec, params, "float64")
        ours = backend.to_numpy(backend.forward(model, backend.to_device(x), training=False))
        np.testing.assert_allclose(torch_out, ours, rtol=0, atol=1e-10, err_msg=backend.name)
        np.testing.assert_allclose(keras_out, ours, rtol=0, atol=1e-10, err_msg=backend.name)
    assert {k: tuple(v.shape) for k, v in native_torch.state_dict().items()
            if not k.endswith("num_batches_tracked")} == \
        spec.param_shapes()  # crossloop's canonical names are the torch module's own


def test_weights_from_a_crossloop_file_and_the_command(tmp_path, capsys):
    from safetensors.numpy import load_file

    spec = nn.lenet5()
    params = nn.init_params(spec, 5, dtype="float64")
    save_params(tmp_path / "w.safetensors", params, spec)
    assert commands.main(["export", "--model", "lenet5", "--out-dir", str(tmp_path / "out")]) == 0
    assert "lenet5_torch.py" in capsys.readouterr().out
    edited = tmp_path / "out" / "lenet5_torch.py"
    edited.write_text(edited.read_text() + "# my edit\n")
    assert commands.main(["export", "--model", "lenet5", "--out-dir", str(tmp_path / "out")]) == 2
    assert "already exist; pass --overwrite (overwrite=True)" in capsys.readouterr().err
    with pytest.raises(export.ExportError, match=r"--overwrite \(overwrite=True\) .* another "
                                                  r"--out-dir \(folder=...\)"):
        export.write(spec, tmp_path / "out")
    assert edited.read_text().endswith("# my edit\n")
    assert commands.main(["export", "--model", "lenet5", "--out-dir", str(tmp_path / "out"),
                          "--overwrite"]) == 0
    assert "# my edit" not in edited.read_text()
    with pytest.raises(SystemExit) as exit_:
        commands.main(["export", "--model", "lenet5", "--out-dir", str(edited / "sub")])
    assert exit_.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    keras_module = import_file(tmp_path / "out" / "lenet5_keras.py")
    model = keras_module.load_weights(keras_module.build_model("float64"),
                                      load_file(tmp_path / "w.safetensors"))
    np.testing.assert_array_equal(model.get_layer("conv0").kernel.numpy(),
                                  params["0.weight"].transpose(2, 3, 1, 0))


def test_the_keras_file_refuses_another_models_weights_naming_the_tensors(tmp_path):
    keras_module = import_file(export.write(SPECS["strided"], tmp_path)[1])
    other = nn.init_params(nn.Sequential((nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 7)),
                                         input_shape=(4,)), 0, dtype="float64")
    with pytest.raises(ValueError, match=r"missing \['6.weight', '6.bias'\], "
                                         r"extra \['2.weight', '2.bias'\], shaped otherwise "
                                         r"\['0.weight \(3, 4\) \(not \(4, 3, 3, 3\)\)'"):
        keras_module.load_weights(keras_module.build_model("float64"), other)


def test_a_layer_without_an_emitter_is_named():
    class Gelu:  # a layer type the exporter does not know
        pass

    with pytest.raises(export.ExportError, match=r"cannot write layer '3' \(Gelu\): it writes"):
        export.emitter(Gelu(), "3")


REFUSED = textwrap.dedent("""
    from crossloop import nn

    def dense_on_images():
        return nn.Sequential({"conv": nn.Conv2d(1, 2, 3), "fc": nn.Linear(4, 3)},
                             input_shape=(1, 6, 6), name="dense-on-images")
""")


def test_a_model_export_cannot_write_is_refused_naming_the_layer(tmp_path, monkeypatch, capsys):
    # torch's Linear acts on the last axis, W of (C, H, W); the Keras model runs NHWC
    (tmp_path / "refused.py").write_text(REFUSED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "refused", raising=False)
    assert commands.main(["export", "--model", "refused:dense_on_images", "--out-dir", "out"]) == 2
    err = capsys.readouterr().err
    assert "cannot write layer 'fc' (Linear)" in err and "(H, W, C)" in err
    assert "Traceback" not in err and not list(tmp_path.glob("out/*.py"))


def test_the_command_exports_a_model_for_the_data_it_was_trained_on(tmp_path, capsys):
    """mlp trained on scikit-learn's 8x8 digits: --input-shape gives its real first layer;
    a model with a fixed input refuses another shape."""
    assert commands.main(["export", "--model", "mlp", "--input-shape", "1,8,8", "--classes", "10",
                          "--out-dir", str(tmp_path)]) == 0
    assert "nn.Linear(64, 128)" in (tmp_path / "mlp_torch.py").read_text()
    assert commands.main(["export", "--model", "lenet5", "--input-shape", "1,8,8",
                          "--out-dir", str(tmp_path)]) == 2
    assert "takes input shape (1, 28, 28), not (1, 8, 8)" in capsys.readouterr().err
