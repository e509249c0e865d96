"""The porting gallery (examples/porting): faithful torch -> Keras ports agree to
1e-10 in float64 over 20 training steps; each planted bug is caught at the planted
layer with its cause; transfer_weights is exact both ways and stops on ambiguity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import crossloop

pytestmark = pytest.mark.skipif(len(crossloop.available_backends()) < 2,
                                reason="needs torch and tensorflow")
sys.path.insert(0, str(Path(__file__).parents[1] / "examples" / "porting"))
gallery = pytest.importorskip("gallery")

from crossloop.testing import assert_models_agree  # noqa: E402
from crossloop.transfer import PairingError, transfer_weights  # noqa: E402


@pytest.mark.parametrize("case", gallery.CASES, ids=lambda c: c.name)
def test_gallery_case(case):
    report = gallery.run_case(case)
    assert gallery.verdict(case, report) is None, gallery.verdict(case, report)
    if case.layer is None:   # every layer output, gradient and weight of 20 steps compared
        assert report.max_diff("weights") <= 1e-10 and report.steps == 20
        assert {r.phase for r in report.rows} == {"start", "forward", "gradient", "loss", "weights"}


@pytest.mark.parametrize("model", ["resnet", "transformer"])
def test_transfer_round_trip_is_exact(model):
    case = gallery.Case(model, model)
    x, _ = gallery.batch(model)
    torch_model, keras_model = gallery.models(case)
    before = {k: v.detach().numpy().copy() for k, v in torch_model.state_dict().items()}
    transfer_weights(torch_model, keras_model, inputs=x)
    fresh, _ = gallery.models(gallery.Case(model, model))
    for p in fresh.parameters():   # make sure the way back writes every tensor
        p.data.add_(1.0)
    transfer_weights(keras_model, fresh, inputs=x)
    for name, value in fresh.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(value.detach().numpy(), before[name], err_msg=name)


def test_ambiguous_pairing_stops_with_the_table_and_takes_a_map(tmp_path):
    from resnet import SHORTCUT_FIRST_MAP, keras_resnet, torch_resnet
    x, y = gallery.batch("resnet")
    torch_model, keras_model = torch_resnet(), keras_resnet(bug="shortcut_first")
    with pytest.raises(PairingError) as error:
        transfer_weights(torch_model, keras_model, inputs=x)
    message = str(error.value)
    assert "block.shortcut.0 [conv2d] 16x8x1x1" in message and "block_shortcut [conv2d]" in message
    assert "weight_map=" in message
    with pytest.raises(PairingError, match="not a layer with tensors"):
        transfer_weights(torch_model, keras_model, {"stem": "nope"}, inputs=x)
    pairs = transfer_weights(torch_model, keras_model, SHORTCUT_FIRST_MAP.get, inputs=x)  # a function
    assert [(t.name, k.name) for t, k in pairs] == list(SHORTCUT_FIRST_MAP.items())
    report = assert_models_agree(torch_model, keras_model, x, y, weight_map=SHORTCUT_FIRST_MAP,
                                 steps=2)
    assert report.passed and report.max_diff("forward") <= 1e-10
    paths = report.save(tmp_path)
    assert [p.name for p in paths] == ["report.json", "models.png"]


def test_assert_models_agree_fails_naming_the_layer():
    case = next(c for c in gallery.CASES if c.name == "layernorm_default_eps")
    x, y = gallery.batch("transformer")
    with pytest.raises(AssertionError, match="(?s)layer ln1 .*torch eps 1e-05, Keras epsilon 0.001"):
        assert_models_agree(*gallery.models(case), x)   # no targets: MSE against zeros


def test_compare_models_command(tmp_path, monkeypatch, capsys):
    from crossloop import commands
    monkeypatch.chdir(Path(__file__).parents[1] / "examples" / "porting")
    argv = ["compare-models", "--torch", "resnet:torch_resnet", "--keras", "resnet:keras_resnet",
            "--input-shape", "1,8,8", "--steps", "2", "--out", str(tmp_path), "--no-plot"]
    assert commands.main(argv) == 0
    assert "PASS" in capsys.readouterr().out and (tmp_path / "report.json").is_file()
    assert commands.main([*argv, "--tol", "1e-30"]) == 1   # rounding alone is over this
    assert "FAIL: first divergence" in capsys.readouterr().out
    assert commands.main([*argv, "--weight-map", str(tmp_path / "missing.json")]) == 2
    assert "not a readable JSON file" in capsys.readouterr().err
    assert commands.main([*argv[:2], "nowhere:torch_resnet", *argv[3:]]) == 2


def test_functional_keras_model_needs_no_example_inputs():
    import keras
    import torch
    torch.manual_seed(0)
    t = torch.nn
    torch_model = t.Sequential(t.Conv2d(1, 4, 3), t.ReLU(), t.Flatten(), t.Linear(144, 10)).double()
    keras_model = keras.Sequential([keras.Input((8, 8, 1), dtype="float64"),
                                    keras.layers.Conv2D(4, 3, dtype="float64"),
                                    keras.layers.ReLU(dtype="float64"),
                                    keras.layers.Flatten(dtype="float64"),
                                    keras.layers.Dense(10, dtype="float64")])
    pairs = transfer_weights(torch_model, keras_model)   # traced on a batch shaped like its Input
    assert [(a.kind, b.kind) for a, b in pairs] == [("conv2d", "conv2d"), ("linear", "linear")]
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(keras_model(x.transpose(0, 2, 3, 1)).numpy(), expected,
                               rtol=0, atol=1e-12)
