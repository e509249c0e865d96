"""compare_models and the tracing under it, on small hand-written ports: Keras's
fused activations, repeated layer calls, partial weight maps, bad arguments and
the table's text."""

from __future__ import annotations

import numpy as np
import pytest

import crossloop

pytestmark = pytest.mark.skipif(len(crossloop.available_backends()) < 2,
                                reason="needs torch and tensorflow")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from crossloop.compare import CompareError, compare_models  # noqa: E402
from crossloop.transfer import PairingError, trace, transfer_weights  # noqa: E402


def mlp_pair(keras_activation: str = "relu"):
    """torch Linear, ReLU, Linear and its Keras port with the ReLU fused into the Dense."""
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(),
                             torch.nn.Linear(8, 3)).double()
    km = keras.Sequential([keras.Input((16,), dtype="float64"),
                           keras.layers.Dense(8, activation=keras_activation, name="d1",
                                              dtype="float64"),
                           keras.layers.Dense(3, name="d2", dtype="float64")])
    rng = np.random.default_rng(0)
    return tm, km, rng.standard_normal((4, 16)), rng.integers(0, 3, 4)


def test_a_fused_activation_pairs_with_the_torch_activation():
    tm, km, x, y = mlp_pair()
    report = compare_models(tm, km, x, y, steps=3)
    assert report.passed, report.summary()
    forward = [(r.torch, r.keras, r.tensor) for r in report.rows if r.phase == "forward"]
    assert forward == [("0", "d1", "linear"), ("1", "d1 (fused relu)", "relu"),
                       ("2", "d2", "linear")]


def test_a_wrong_fused_activation_is_named():
    tm, km, x, y = mlp_pair("tanh")
    report = compare_models(tm, km, x, y, steps=1)
    first = report.first_divergence
    assert (first.phase, first.torch, first.keras) == ("forward", "1", "d1 (fused tanh)")
    assert report.causes == ["torch's 1 computes relu, Keras's d1 (fused tanh) tanh"]


def test_a_layer_called_three_times_gets_three_names():
    dense = keras.layers.Dense(4, name="dense", dtype="float64")
    inputs = keras.Input((4,), dtype="float64")
    model = keras.Model(inputs, dense(dense(dense(inputs))))
    _, records, _ = trace(model, np.ones((2, 4)))
    assert [r.name for r in records] == ["dense", "dense (call 2)", "dense (call 3)"]
    assert [bool(r.params) for r in records] == [True, False, False]


def test_a_weight_map_naming_no_torch_layer_is_refused():
    tm, km, x, _ = mlp_pair()
    with pytest.raises(PairingError, match="the map names 'nope', which is not a layer with "
                                           "tensors of the first model"):
        transfer_weights(tm, km, {"nope": "d1"}, inputs=x)


def test_a_partial_weight_map_names_the_layers_left_without_weights():
    tm, km, x, y = mlp_pair()
    with pytest.warns(UserWarning, match="pairs no torch layer with 'd2' of the tensorflow model"):
        pairs = transfer_weights(tm, km, {"0": "d1"}, inputs=x)
    assert [(t.name, k.name) for t, k in pairs] == [("0", "d1")]
    with pytest.warns(UserWarning):
        report = compare_models(tm, km, x, y, weight_map={"0": "d1"})
    assert not report.passed
    assert report.causes[0] == ("the weight_map leaves out torch's 2 and Keras's d2: no weights "
                                "were transferred between them")


@pytest.mark.parametrize("bad, message", [
    (lambda x, y: {"inputs": x[:, :10]}, r"inputs has shape \(4, 10\); the Keras model takes \(N, 16\)"),
    (lambda x, y: {"targets": y[:2]}, r"targets has shape \(2,\), inputs \(4, 16\)"),
    (lambda x, y: {"inputs": None}, "inputs is None: pass one batch"),
    (lambda x, y: {"steps": -1}, "steps must be a whole number of training steps, 0 or more; got -1"),
], ids=["features", "batch", "none", "steps"])
def test_bad_arguments_are_named_before_the_models_run(bad, message):
    tm, km, x, y = mlp_pair()
    arguments = {"inputs": x, "targets": y, "steps": 1} | bad(x, y)
    with pytest.raises(CompareError, match=message):
        compare_models(tm, km, **arguments)


def test_the_table_columns_line_up_and_say_where_the_rest_is():
    tm, km, x, y = mlp_pair()
    lines = compare_models(tm, km, x, y, steps=3).table(max_rows=12).splitlines()
    cells = [(line[:9].strip(), line[9:14].strip(), line[16:38].strip()) for line in lines[1:-1]]
    assert [c for c in cells if c[0] == "loss"] == [("loss", str(s), "-") for s in range(3)]
    assert {c[1] for c in cells if c[0] in ("forward", "gradient")} == {"-"}
    assert lines[-1] == ("... 2 more rows not shown: table(max_rows=...) shows them, "
                         "save(folder) writes them all to report.json")


@pytest.mark.parametrize("momentum, epsilon, cause", [
    (0.99, 1e-3, "torch momentum 0.1 / eps 1e-05, Keras momentum 0.99 / epsilon 0.001 "
                 "(torch counts momentum on the new batch"),
    (0.9, 1e-3, "BatchNorm: torch eps 1e-05, Keras epsilon 0.001 (the momenta agree)")])
def test_a_batchnorm_cause_names_what_differs(momentum, epsilon, cause):
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4)).double()
    km = keras.Sequential([keras.Input((6,), dtype="float64"),
                           keras.layers.Dense(4, name="fc", dtype="float64"),
                           keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon,
                                                           name="bn", dtype="float64")])
    rng = np.random.default_rng(0)
    report = compare_models(tm, km, rng.standard_normal((8, 6)), rng.integers(0, 4, 8), steps=1)
    assert not report.passed and cause in report.causes[0]
