"""compare_models: a torch model and its Keras port, layer by layer and step by step.

After the weights are transferred (or left as they are, ``weight_map=None``,
when a hand-written converter put them there), both models run the same batch
in training mode: every paired layer's output is compared (torch forward
hooks; Keras layer calls, see :mod:`crossloop.tracing`), then every parameter's
gradient, then, for ``steps`` training steps, the loss and every weight and
running statistic after each step. All tensors are compared in canonical
layout (torch's).
"""

from __future__ import annotations

import time
from difflib import SequenceMatcher
from typing import Any

import numpy as np

from .. import losses, native, optim
from ..errors import InputError
from ..tracing import ACTIVATIONS, LayerRecord
from ..transfer import (
    Pairs,
    WeightMap,
    backend_for,
    input_shape,
    pair_layers,
    trace,
    transfer_weights,
    unpaired,
)
from .causes import layer_causes, optimizer_causes, weight_causes
from .report import TOLERANCES, ModelReport, Row, diff


def compare_models(torch_model: Any, keras_model: Any, inputs: np.ndarray,
                   targets: np.ndarray | None = None, *, loss: str | losses.Loss = "cross_entropy",
                   optimizer: optim.Optimizer | tuple[Any, Any] | None = None, steps: int = 0,
                   weight_map: WeightMap | None = "auto", dtype: str = "float64",
                   tolerance: float | None = None) -> ModelReport:
    """Compare a torch ``nn.Module`` and a ``keras.Model`` meant to compute the same thing.

    ``inputs`` is one batch in canonical layout (NCHW images, token ids); both
    models must hold ``dtype`` parameters. ``targets`` (default: zeros, with the
    MSE loss) and ``loss`` give the gradients. With ``steps > 0`` both train on
    the batch with ``optimizer``: a crossloop spec (torch's formula on both,
    default SGD(0.1)) or a pair ``(torch optimizer, Keras optimizer)`` of native
    instances. ``tolerance`` bounds max |torch - keras| / max(1, max |torch|)
    (default 1e-10 in float64, 1e-4 in float32). The models are changed: the
    weights transferred, BatchNorm statistics updated, ``steps`` steps trained.
    Raises :class:`CompareError` naming the argument when ``inputs`` does not fit the
    Keras model's input, ``targets`` has another batch size or ``steps`` is negative.
    """
    started = time.perf_counter()
    tb, kb = backend_for(torch_model), backend_for(keras_model)
    if (tb.name, kb.name) != ("torch", "tensorflow"):
        raise native.NativeModelError(f"compare_models takes a torch model, then a Keras model; "
                                      f"got {tb.name} and {kb.name} models")
    for backend, model in ((tb, torch_model), (kb, keras_model)):
        own = native.dtype_of(backend.get_params(model))
        if own != dtype:
            raise native.NativeModelError(f"the {backend.name} model's parameters are {own}, not "
                                          f"{dtype}: build both models in the dtype compared")
    x = _checked_inputs(keras_model, inputs, targets, steps)
    x = x.astype(dtype) if x.dtype.kind == "f" else x
    report = ModelReport(dtype, tolerance if tolerance is not None else TOLERANCES[dtype], steps)
    if weight_map is not None:
        transfer_weights(torch_model, keras_model, weight_map, inputs=x)
    t_start, k_start = tb.get_params(torch_model), kb.get_params(keras_model)
    _, t_records, t_tensors = trace(torch_model, x, training=True)
    _, k_records, k_tensors = trace(keras_model, x, training=True)
    pairs = pair_layers(t_records, k_records, t_tensors, k_tensors,
                        "auto" if weight_map is None else weight_map)
    report.rows += _weight_rows(report, "start", pairs, t_start, k_start, None)
    aligned = align(t_records, k_records, pairs)
    report.rows += _forward_rows(report, aligned)
    spec = losses.get(loss)
    if targets is None:
        output = tb.to_numpy(tb.forward(torch_model, tb.to_device(x), training=False))
        spec, targets = losses.MSE(), np.zeros_like(output)
    y = np.asarray(targets)
    y = y.astype(dtype) if y.dtype.kind == "f" else y
    t_opt, k_opt = _optimizers(tb, kb, torch_model, keras_model, optimizer)
    for step in range(max(steps, 1)):
        t_loss, _, t_grads = tb.gradients(torch_model, spec, tb.to_device(x), tb.to_device(y))
        k_loss, _, k_grads = kb.gradients(keras_model, spec, kb.to_device(x), kb.to_device(y))
        if step == 0:
            report.rows += _gradient_rows(report, pairs, tb.canonical_gradients(torch_model, t_grads),
                                          kb.canonical_gradients(keras_model, k_grads),
                                          t_tensors, k_tensors)
        if steps == 0:
            break
        value = diff(tb.to_numpy(t_loss), kb.to_numpy(k_loss))
        report.rows.append(Row("loss", "", "", "loss", value, value <= report.tolerance, step))
        tb.apply_gradients(t_opt, torch_model, t_grads)
        kb.apply_gradients(k_opt, keras_model, k_grads)
        report.rows += _weight_rows(report, "weights", pairs, tb.get_params(torch_model),
                                    kb.get_params(keras_model), step)
    report.causes = _causes(report, aligned, t_start, k_start, t_opt, k_opt)
    left = [f"{side} {', '.join(names)}" for side, names in
            (("torch's", unpaired(t_records, pairs, 0)), ("Keras's", unpaired(k_records, pairs, 1)))
            if names]
    if left and not report.passed:
        report.causes.insert(0, f"the weight_map leaves out {' and '.join(left)}: no weights "
                                "were transferred between them")
    report.seconds = time.perf_counter() - started
    return report


class CompareError(InputError, ValueError):
    """An argument of compare_models it cannot compare with; the message names it."""


def _checked_inputs(keras_model: Any, inputs: Any, targets: Any, steps: Any) -> np.ndarray:
    """``inputs`` as an array, once it, ``targets`` and ``steps`` are fit to compare
    with: checked here, where a mistake can be named, not deep in a framework."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise CompareError(f"steps must be a whole number of training steps, 0 or more; "
                           f"got {steps!r}")
    if inputs is None:
        raise CompareError("inputs is None: pass one batch, an array (N, ...) in canonical "
                           "layout (NCHW images, token ids)")
    x = np.asarray(inputs)
    expected = input_shape(keras_model)
    if x.ndim == 0 or expected is not None and (len(expected) != x.ndim - 1 or any(
            e not in (None, n) for e, n in zip(expected, x.shape[1:]))):
        wanted = "one batch (N, ...)" if expected is None else \
            f"(N, {', '.join('any' if e is None else str(e) for e in expected)})"
        raise CompareError(f"inputs has shape {x.shape}; the Keras model takes {wanted} "
                           "in canonical layout (NCHW images)")
    if targets is not None and np.shape(targets)[:1] != x.shape[:1]:
        raise CompareError(f"targets has shape {np.shape(targets)}, inputs {x.shape}: give one "
                           f"target per input row, {x.shape[0]} in all")
    return x


def align(t_records: list[LayerRecord], k_records: list[LayerRecord], pairs: Pairs) -> Pairs:
    """Every layer call of one model paired with one of the other, in the torch model's
    order: the parametric pairs, and between two of them that run in the same order
    in both models, the other calls matched by kind -- and activations where the
    kinds differ, one for one (a port's wrong activation is compared, so named)."""
    out: Pairs = []
    ti = ki = 0
    for t, k in [*pairs, (None, None)]:
        t_end = len(t_records) if t is None else t_records.index(t)
        k_end = len(k_records) if k is None else k_records.index(k)
        if k_end >= ki:   # in order: match what runs between this pair and the last
            a, b = t_records[ti:t_end], k_records[ki:k_end]
            kinds = SequenceMatcher(None, [r.kind for r in a], [r.kind for r in b], autojunk=False)
            for tag, i, i_end, j, j_end in kinds.get_opcodes():
                if tag == "equal" or (tag == "replace" and i_end - i == j_end - j and all(
                        r.kind in ACTIVATIONS for r in (*a[i:i_end], *b[j:j_end]))):
                    out += list(zip(a[i:i_end], b[j:j_end]))
            ki = k_end + 1
        if t is not None:
            out.append((t, k))
        ti = t_end + 1
    return out


def _forward_rows(report: ModelReport, aligned: Pairs) -> list[Row]:
    rows = []
    for t, k in aligned:
        value = diff(t.output, k.output)
        shapes = "" if np.shape(t.output) == np.shape(k.output) else \
            f"output shapes {np.shape(t.output)} vs {np.shape(k.output)}"
        in_diff = diff(t.input, k.input) if np.shape(t.input) == np.shape(k.input) else None
        kind = t.kind if t.kind == k.kind else f"{t.kind}/{k.kind}"
        rows.append(Row("forward", t.name, k.name, kind, value, value <= report.tolerance,
                        input_diff=in_diff, note=shapes))
    return rows


def _gradient_rows(report: ModelReport, pairs: Pairs, t_grads: dict[str, np.ndarray],
                   k_grads: dict[str, np.ndarray], t_tensors: dict[str, np.ndarray],
                   k_tensors: dict[str, np.ndarray]) -> list[Row]:
    rows = []
    for t, k in pairs:
        k_canon = _canonical_grads(k, k_grads, k_tensors)
        for role, value in _canonical_grads(t, t_grads, t_tensors).items():
            d = diff(value, k_canon.get(role))
            rows.append(Row("gradient", t.name, k.name, role, d, d <= report.tolerance))
    return rows


def _canonical_grads(record: LayerRecord, grads: dict[str, np.ndarray],
                     tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A layer's gradients in canonical roles, for the roles that have one (not the
    running statistics, zero-filled for the conversion): the conversion of a 0/1
    mask says which those are."""
    filled = {n: grads[n] if n in grads else np.zeros_like(tensors[n]) for n in record.params}
    mask = record.canonical({n: np.full(np.shape(v), float(n in grads)) for n, v in filled.items()})
    return {role: v for role, v in record.canonical(filled).items() if mask[role].any()}


def _weight_rows(report: ModelReport, phase: str, pairs: Pairs, t_tensors: dict[str, np.ndarray],
                 k_tensors: dict[str, np.ndarray], step: int | None) -> list[Row]:
    rows = []
    for t, k in pairs:
        k_canon = k.canonical(k_tensors)
        for role, value in t.canonical(t_tensors).items():
            d = diff(value, k_canon.get(role))
            rows.append(Row(phase, t.name, k.name, role, d, d <= report.tolerance, step))
    return rows


def _optimizers(tb: Any, kb: Any, torch_model: Any, keras_model: Any, optimizer: Any):
    if isinstance(optimizer, tuple):
        specs = [native.optimizer_spec(b, o) for b, o in zip((tb, kb), optimizer)]
    else:
        specs = [optimizer or optim.SGD(0.1)] * 2
    return tb.build_optimizer(specs[0], torch_model), kb.build_optimizer(specs[1], keras_model)


def _causes(report: ModelReport, aligned: Pairs, t_tensors: dict[str, np.ndarray],
            k_start: dict[str, np.ndarray], t_opt: Any, k_opt: Any) -> list[str]:
    """Likely causes of the first divergence: the optimizers' settings (in training),
    the culprit pair's settings and numbers, its weights right after the transfer."""
    first = report.first_divergence
    if first is None:
        return []
    causes = optimizer_causes(t_opt.spec, k_opt.spec) if first.phase in ("loss", "weights") else []
    for t, k in aligned:
        if (t.name, k.name) != (first.torch, first.keras):
            continue
        causes += layer_causes(t, k, first.tensor)
        if any(r.phase == "start" and r.torch == t.name and not r.ok for r in report.rows):
            causes += weight_causes(t, k, t.canonical(t_tensors), k_start)
    return causes
