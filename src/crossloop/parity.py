"""Cross-backend parity: train one experiment on two backends step by step and show
where they part.

Both backends start from the same initial weights (drawn by crossloop in NumPy)
and see the same batches. Each step runs the loop phases one by one --
``set_learning_rate``, ``gradients``, ``canonical_gradients``,
``apply_gradients``, ``get_params`` -- so after every step crossloop can compare
the loss, the global gradient norm, every gradient and every weight tensor in
canonical layout. The first quantity over its :class:`Tolerance` is reported by
step and tensor name.

In float64 on CPU the two backends agree to ~1e-14: any larger difference is a
logic difference (a formula, a layout, a default), not rounding. In float32,
rounding noise of ~1e-7 per op is expected, and rare near-ties (a ReLU input
or two max-pool candidates within an ulp) may route a gradient differently;
the float32 tolerances check the loss and the same-weights logits.

Run from the command line as ``crossloop parity`` (see :func:`add_arguments`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from . import losses as losses_lib
from . import nn, optim
from .backend import Backend, get_backend
from .data import Batches, load_dataset

Batch = tuple[np.ndarray, np.ndarray]


# -- tolerances and findings ----------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """Largest differences between the two backends that still count as agreement.

    ``None`` leaves a quantity unchecked (it is still recorded). The loss agrees
    when ``|loss_a - loss_b| <= loss + loss_rel * |loss_a|`` (with None as 0);
    ``grads`` and ``weights`` bound each tensor's max abs difference after every
    step; ``logits`` bounds the forward pass of the same weights on both
    backends (checked on the initial and on the final weights).
    """
    loss: float | None = None
    loss_rel: float | None = None
    grads: float | None = None
    weights: float | None = None
    logits: float | None = None

    @classmethod
    def default(cls, dtype: str) -> Tolerance:
        """crossloop's promise per dtype (see the module docstring)."""
        if dtype not in DEFAULT_TOLERANCES:
            raise ValueError(f"dtype={dtype!r} is not one of {', '.join(DEFAULT_TOLERANCES)}")
        return DEFAULT_TOLERANCES[dtype]


DEFAULT_TOLERANCES = {
    "float64": Tolerance(loss=1e-10, grads=1e-10, weights=1e-10, logits=1e-10),
    "float32": Tolerance(loss_rel=1e-4, logits=1e-5),
}


@dataclass(frozen=True)
class Exceedance:
    """The first difference over its tolerance."""
    step: int
    quantity: str      # "loss", "grads", "weights" or "logits"
    tensor: str        # canonical tensor name, or "loss" / "logits (same weights)"
    value: float
    tolerance: float

    def __str__(self) -> str:
        what = {"grads": f"gradient of {self.tensor!r}", "weights": f"weight {self.tensor!r}",
                "loss": "loss", "logits": "logits (same weights on both)"}[self.quantity]
        return (f"step {self.step}: {what} differs by {self.value:.3g} "
                f"> tolerance {self.tolerance:.3g}")


# -- the report -----------------------------------------------------------------

@dataclass
class StepRecord:
    """What both backends did at one optimizer step (step s runs at lr(s)).

    ``loss``, ``logits`` and the gradients come from the forward/backward pass
    before the update; ``weight_diff`` compares the parameters after it.
    ``grad_norm`` is each backend's global gradient norm before any clipping.
    """
    step: int
    lr: float
    loss: list[float]
    grad_norm: list[float]
    logits_diff: float
    grad_diff: dict[str, float]
    weight_diff: dict[str, float]

    @property
    def loss_diff(self) -> float:
        return abs(self.loss[0] - self.loss[1])


@dataclass
class ParityReport:
    """The step-by-step comparison of two backends: table, JSON and plot."""
    backends: tuple[str, str]
    dtype: str
    tolerance: Tolerance
    config: dict[str, Any]
    steps: list[StepRecord]
    logits_diff: dict[str, float]    # same weights on both: "initial" and "final"
    seconds: float
    failure: Exceedance | None = field(init=False)

    def __post_init__(self) -> None:
        self.failure = _first_exceedance(self)

    @property
    def passed(self) -> bool:
        return self.failure is None

    def max_diff(self, quantity: str) -> float:
        """Largest difference over all steps: "loss", "loss_rel", "grads",
        "weights", "logits" (same weights) or "grad_norm"."""
        values = (list(self.logits_diff.values()) if quantity == "logits"
                  else [v for r in self.steps for v in _diffs(r, quantity)])
        return max(values, default=0.0, key=lambda v: math.inf if math.isnan(v) else v)

    def summary(self) -> str:
        """One line: PASS or FAIL with the first step and tensor over tolerance."""
        a, b = self.backends
        head = (f"{a} vs {b}, {self.dtype}, {len(self.steps)} steps: max |dloss| "
                f"{self.max_diff('loss'):.3g} (rel {self.max_diff('loss_rel'):.3g}), "
                f"max |dgrad| {self.max_diff('grads'):.3g}, max |dweight| "
                f"{self.max_diff('weights'):.3g}, same-weights logits {self.max_diff('logits'):.3g}")
        return f"PASS  {head}" if self.passed else f"FAIL  {self.failure}\n      {head}"

    def table(self, max_rows: int = 30) -> str:
        """The per-step table; long runs show evenly spaced steps, always
        including the first failing step and the last."""
        a, b = self.backends
        header = (f"{'step':>5} {'lr':>10} {'loss[' + a + ']':>14} {'|dloss|':>9} "
                  f"{'gnorm[' + a + ']':>13} {'|dgnorm|':>9} {'max |dgrad|':>25} "
                  f"{'max |dweight|':>25}")
        lines = [header, "-" * len(header)]
        for r in _pick_rows(self, max_rows):
            lines.append(f"{r.step:>5} {r.lr:>10.4g} {r.loss[0]:>14.8g} {r.loss_diff:>9.2e} "
                         f"{r.grad_norm[0]:>13.6g} {abs(r.grad_norm[0] - r.grad_norm[1]):>9.2e} "
                         f"{_worst(r.grad_diff):>25} {_worst(r.weight_diff):>25}"
                         + ("  <- first over tolerance"
                            if self.failure and self.failure.step == r.step else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"backends": list(self.backends), "dtype": self.dtype, "passed": self.passed,
                "failure": dataclasses.asdict(self.failure) if self.failure else None,
                "failure_message": str(self.failure) if self.failure else None,
                "tolerance": dataclasses.asdict(self.tolerance), "config": self.config,
                "seconds": self.seconds, "logits_diff": self.logits_diff,
                "max": {q: self.max_diff(q) for q in ("loss", "loss_rel", "grads", "weights",
                                                       "logits", "grad_norm")},
                "steps": [{**dataclasses.asdict(r), "loss_diff": r.loss_diff} for r in self.steps]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=True)

    def save(self, directory: str | Path, *, plot: bool = True) -> list[Path]:
        """Write ``report.json`` (and ``parity.png``) into ``directory``; return the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / "report.json"]
        paths[0].write_text(self.to_json())
        if plot:
            paths.append(self.plot(directory / "parity.png"))
        return paths

    def plot(self, path: str | Path) -> Path:
        """A PNG of the differences per step on a log scale: one line per tensor for
        weights and for gradients, then the loss; tolerances dashed, first failure marked."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("the parity plot needs matplotlib: pip install crossloop[plot]") from None
        floor = float(np.finfo(self.dtype).eps) * 1e-3   # where exact zeros are drawn
        fig = Figure(figsize=(11, 9), layout="constrained")
        axes = fig.subplots(3, 1, sharex=True)
        _plot_tensors(axes[0], self, "weights", floor)
        _plot_tensors(axes[1], self, "grads", floor)
        _plot_loss(axes[2], self, floor)
        for ax in axes:
            if self.failure is not None:
                ax.axvline(self.failure.step, color="r", lw=0.8, alpha=0.6)
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        axes[-1].set_xlabel(f"optimizer step (exact zeros drawn at {floor:.0e})")
        verdict = "PASS" if self.passed else f"FAIL at {self.failure}"
        fig.suptitle(f"{self.config.get('model', {}).get('name', 'model')} · "
                     f"{self.config.get('optimizer', {}).get('type', '')} · {self.dtype} · "
                     f"{self.backends[0]} vs {self.backends[1]} — {verdict}", fontsize=11)
        path = Path(path)
        fig.savefig(path, dpi=110)
        return path


def _plot_tensors(ax: Any, report: ParityReport, quantity: str, floor: float) -> None:
    """One line per tensor: a colour per layer, solid weights, dotted biases."""
    steps = [r.step for r in report.steps]
    names = list(_tensor_diffs(report.steps[0], quantity)) if report.steps else []
    layers = list(dict.fromkeys(name.partition(".")[0] for name in names))
    for name in names:
        layer, _, kind = name.partition(".")
        ax.plot(steps, [max(_tensor_diffs(r, quantity)[name], floor) for r in report.steps],
                color=f"C{layers.index(layer) % 10}", ls="-" if kind == "weight" else ":",
                label=name)
    tol = getattr(report.tolerance, quantity)
    if tol is not None:
        ax.axhline(tol, color="r", ls="--", lw=1, label=f"tolerance {tol:g}")
    what = "weights after the step" if quantity == "weights" else "gradients"
    ax.set_title(f"{what}: max |diff| per tensor", loc="left", fontsize=10)


def _plot_loss(ax: Any, report: ParityReport, floor: float) -> None:
    """The loss difference, its tolerance, and the logits difference for reference."""
    steps, tol = [r.step for r in report.steps], report.tolerance
    ax.plot(steps, [max(r.loss_diff, floor) for r in report.steps], color="k", marker=".",
            lw=0.6, label="|loss diff|")
    ax.plot(steps, [max(r.logits_diff, floor) for r in report.steps], color="0.6",
            label="max |logits diff| (each on its own weights)")
    if tol.loss is not None or tol.loss_rel is not None:
        ax.plot(steps, [(tol.loss or 0.0) + (tol.loss_rel or 0.0) * abs(r.loss[0])
                        for r in report.steps], "r--", lw=1, label="tolerance")
    ax.set_title("loss: |diff|", loc="left", fontsize=10)


def _diffs(r: StepRecord, quantity: str) -> list[float]:
    if quantity == "loss":
        return [r.loss_diff]
    if quantity == "loss_rel":
        return [r.loss_diff / abs(r.loss[0]) if r.loss[0] else r.loss_diff]
    if quantity in ("grads", "weights"):
        return list(_tensor_diffs(r, quantity).values())
    if quantity == "grad_norm":
        return [abs(r.grad_norm[0] - r.grad_norm[1])]
    raise ValueError(f"unknown quantity {quantity!r}; use loss, loss_rel, grads, weights, "
                     "logits or grad_norm")


def _tensor_diffs(r: StepRecord, quantity: str) -> dict[str, float]:
    return r.grad_diff if quantity == "grads" else r.weight_diff


def _over(value: float, tol: float | None) -> bool:
    """True when ``value`` exceeds ``tol``; NaN always does."""
    return tol is not None and not value <= tol


def _first_exceedance(report: ParityReport) -> Exceedance | None:
    """Scan in the order things happen: same-weights logits, then per step the loss,
    the gradients and the weights (tensors in model order), then the final logits."""
    tol = report.tolerance
    if _over(report.logits_diff.get("initial", 0.0), tol.logits):
        return Exceedance(0, "logits", "logits (same weights)", report.logits_diff["initial"],
                          tol.logits)
    for r in report.steps:
        if tol.loss is not None or tol.loss_rel is not None:
            allowed = (tol.loss or 0.0) + (tol.loss_rel or 0.0) * abs(r.loss[0])
            if _over(r.loss_diff, allowed):
                return Exceedance(r.step, "loss", "loss", r.loss_diff, allowed)
        for quantity in ("grads", "weights"):
            for name, value in _tensor_diffs(r, quantity).items():
                if _over(value, getattr(tol, quantity)):
                    return Exceedance(r.step, quantity, name, value, getattr(tol, quantity))
    last = report.steps[-1].step if report.steps else 0
    if _over(report.logits_diff.get("final", 0.0), tol.logits):
        return Exceedance(last, "logits", "logits (same weights)", report.logits_diff["final"],
                          tol.logits)
    return None


def _worst(diffs: Mapping[str, float]) -> str:
    name = max(diffs, key=lambda n: math.inf if math.isnan(diffs[n]) else diffs[n])
    return f"{diffs[name]:.2e} ({name})"


def _pick_rows(report: ParityReport, max_rows: int) -> list[StepRecord]:
    n = len(report.steps)
    if n <= max_rows:
        return report.steps
    keep = {int(round(i * (n - 1) / (max_rows - 1))) for i in range(max_rows - 1)} | {n - 1}
    if report.failure is not None:
        keep |= {i for i, r in enumerate(report.steps) if r.step == report.failure.step}
    return [report.steps[i] for i in sorted(keep)]


# -- running --------------------------------------------------------------------

@dataclass
class _Observed:
    """One backend's step: loss and logits before the update, canonical gradients,
    canonical weights after it."""
    loss: float
    logits: np.ndarray
    grads: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]


@dataclass
class _Run:
    """One backend's side of the comparison: its model and optimizer."""
    backend: Backend
    model: Any
    optimizer: Any

    def step(self, lr: float, loss: losses_lib.Loss, x: np.ndarray, y: np.ndarray) -> _Observed:
        """One optimizer step through the phases, observed at every phase boundary."""
        b = self.backend
        self.optimizer = b.set_learning_rate(self.optimizer, lr)
        value, logits, grads = b.gradients(self.model, loss, b.to_device(x), b.to_device(y))
        canonical = b.canonical_gradients(self.model, grads)
        self.optimizer, self.model = b.apply_gradients(self.optimizer, self.model, grads)
        return _Observed(float(b.to_numpy(value)), b.to_numpy(logits), canonical,
                         b.get_params(self.model))


def _compare(step: int, lr: float, a: _Observed, b: _Observed) -> StepRecord:
    return StepRecord(step, float(lr), [a.loss, b.loss],
                      [_global_norm(a.grads), _global_norm(b.grads)], _max_abs(a.logits, b.logits),
                      {name: _max_abs(a.grads[name], b.grads[name]) for name in a.grads},
                      {name: _max_abs(a.weights[name], b.weights[name]) for name in a.weights})


def run_parity(spec: nn.Sequential, optimizer: optim.Optimizer,
               data: Batches | Iterable[Batch], *, steps: int,
               backends: Sequence[str | Backend] = ("torch", "tensorflow"),
               dtype: str = "float64", loss: str | losses_lib.Loss = "cross_entropy",
               seed: int = 0, init: str = "torch",
               params: Mapping[str, np.ndarray] | None = None,
               tolerance: Tolerance | None = None, device: str = "cpu",
               config: Mapping[str, Any] | None = None) -> ParityReport:
    """Train ``spec`` with ``optimizer`` for ``steps`` steps on two backends and
    compare them after every step.

    ``data`` is a :class:`crossloop.data.Batches` (its epochs are used back to
    back) or any iterable of ``(x, y)`` NumPy batches, x in canonical NCHW.
    Inputs are cast to ``dtype``. ``backends`` are two names or backend objects.
    Initial weights are ``params`` or drawn from ``seed`` with ``init``.
    ``tolerance`` defaults to :meth:`Tolerance.default` for the dtype; the run
    always completes, and ``report.failure`` names the first step and tensor
    over tolerance. TF32 is switched off on both backends during the run.
    ``config`` adds JSON-able notes to the report.
    """
    if len(backends) != 2:
        raise ValueError(f"parity compares exactly two backends, got {list(backends)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    _check_deterministic(spec)
    tolerance = tolerance or Tolerance.default(dtype)
    loss_spec = losses_lib.get(loss)
    pair = [get_backend(b, device=device) if isinstance(b, str) else b for b in backends]
    if params is None:
        params = nn.init_params(spec, seed, init=init, dtype=dtype)
    params = {k: np.asarray(v, dtype) for k, v in params.items()}
    notes = {"model": spec.describe(), "optimizer": _describe(optimizer),
             "loss": type(loss_spec).__name__, "seed": seed, "init": init, "steps": steps,
             "devices": [b.device for b in pair], **(config or {})}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for b in pair:
            stack.enter_context(b.no_tf32())
        for b in pair:
            b.seed(seed)
        runs = []
        for b in pair:
            model = b.build_model(spec, params, dtype)
            runs.append(_Run(b, model, b.build_optimizer(optimizer, model)))
        records, first = [], None
        for step, (x, y) in enumerate(_take(data, steps)):
            x, y = _cast(x, dtype), _cast(y, dtype)
            first = x if first is None else first
            lr = optimizer.lr(step)
            a, b = (run.step(lr, loss_spec, x, y) for run in runs)
            records.append(_compare(step, lr, a, b))
        logits = {"initial": forward_diff(spec, params, first, pair, dtype),
                  "final": forward_diff(spec, a.weights, x, pair, dtype)}
    return ParityReport((pair[0].name, pair[1].name), dtype, tolerance, notes, records, logits,
                        time.perf_counter() - started)


def forward_diff(spec: nn.Sequential, params: Mapping[str, np.ndarray], x: np.ndarray,
                 backends: Sequence[Backend], dtype: str = "float64") -> float:
    """Max abs difference of the logits two backends compute for the same weights
    and inputs (inference mode), each on a freshly built model."""
    logits = []
    for b in backends:
        model = b.build_model(spec, params, dtype)
        logits.append(b.to_numpy(b.forward(model, b.to_device(_cast(x, dtype)), training=False)))
    return _max_abs(*logits)


def _describe(obj: Any) -> Any:
    """A JSON-able description of an optimizer or schedule spec: its type and fields."""
    if dataclasses.is_dataclass(obj):
        return {"type": type(obj).__name__,
                **{f.name: _describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    return list(obj) if isinstance(obj, tuple) else obj


def _check_deterministic(spec: nn.Sequential) -> None:
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, nn.Dropout) and layer.p > 0:
            raise ValueError(
                f"layer {i} is Dropout(p={layer.p}): dropout masks come from each framework's own "
                "RNG, so the backends cannot agree; use p=0 for a parity run "
                "(see docs/framework-differences.md)")


def _take(data: Batches | Iterable[Batch], steps: int) -> Iterator[Batch]:
    """``steps`` batches from ``data``, epochs back to back for a Batches."""
    batches = (data if not isinstance(data, Batches)
               else (batch for epoch in range(steps) for batch in data.epoch(epoch)))
    count = 0
    for batch in batches:
        if count == steps:
            return
        yield batch
        count += 1
    if count < steps:
        raise ValueError(f"the data ran out after {count} batches; the parity run needs {steps}")


def _cast(a: Any, dtype: str) -> np.ndarray:
    """Floats to the run's dtype (contiguous), integer labels unchanged."""
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype) if a.dtype.kind == "f" else a


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def _global_norm(grads: Mapping[str, np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values()))


# -- the `crossloop parity` command ---------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``crossloop parity``."""
    exp = parser.add_argument_group("experiment")
    exp.add_argument("--backends", default="torch,tensorflow", help="two backends, comma-separated")
    exp.add_argument("--dtype", default="float64", choices=nn.DTYPES)
    exp.add_argument("--steps", type=int, default=50)
    exp.add_argument("--model", default="lenet5", choices=sorted(nn.PRESETS))
    exp.add_argument("--optimizer", default="adam", choices=sorted(optim.OPTIMIZERS))
    exp.add_argument("--lr", type=float, default=None, help="peak learning rate; "
                     "unset: the optimizer's own (sgd 0.01, adam/adamw 0.001)")
    exp.add_argument("--momentum", type=float, default=None, help="sgd only")
    exp.add_argument("--nesterov", action="store_true", help="sgd only, needs --momentum")
    exp.add_argument("--weight-decay", type=float, default=None,
                     help="unset: the optimizer's own (adamw 0.01, else 0)")
    exp.add_argument("--schedule", default="constant", choices=["constant", "cosine", "warmup"],
                     help="cosine: warmup then cosine decay to 0 at --steps; "
                          "warmup: warmup then linear decay")
    exp.add_argument("--warmup-steps", type=int, default=0)
    exp.add_argument("--clip-norm", type=float, default=None, help="clip the global gradient norm")
    exp.add_argument("--batch-size", type=int, default=64)
    exp.add_argument("--seed", type=int, default=0)
    exp.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    exp.add_argument("--data-dir", default=None,
                     help="folder with the four IDX files; unset: $CROSSLOOP_DATA/<dataset>, "
                          "then the cache")
    exp.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    out = parser.add_argument_group("output and tolerances (default: per dtype)")
    out.add_argument("--out", default="parity", help="folder for report.json and parity.png")
    out.add_argument("--no-plot", action="store_true", help="skip parity.png")
    out.add_argument("--rows", type=int, default=50, help="most table rows to print")
    for f in dataclasses.fields(Tolerance):
        per_dtype = ", ".join(f"{dtype} {getattr(tol, f.name)}"
                              for dtype, tol in DEFAULT_TOLERANCES.items())
        out.add_argument(f"--tol-{f.name.replace('_', '-')}", type=float, default=None,
                         help=f"unset: per dtype ({per_dtype}; None = unchecked)")


def optimizer_from_args(args: argparse.Namespace) -> optim.Optimizer:
    """The optimizer spec the command-line options describe."""
    cls = optim.OPTIMIZERS[args.optimizer]
    kwargs: dict[str, Any] = {"clip_norm": args.clip_norm}
    if args.weight_decay is not None:
        kwargs["weight_decay"] = args.weight_decay
    if args.momentum is not None or args.nesterov:
        if cls is not optim.SGD:
            raise ValueError(f"--momentum/--nesterov apply to sgd, not {args.optimizer}")
        kwargs.update(momentum=args.momentum or 0.0, nesterov=args.nesterov)
    peak = args.lr if args.lr is not None else cls.__dataclass_fields__["lr"].default
    lr: float | optim.Schedule = peak
    if args.schedule == "cosine":
        lr = optim.Cosine(peak, args.steps, warmup_steps=args.warmup_steps)
    elif args.schedule == "warmup":
        lr = optim.Warmup(peak, max(1, args.warmup_steps), args.steps)
    elif args.warmup_steps:
        raise ValueError("--warmup-steps needs --schedule cosine or warmup")
    return cls(lr=lr, **kwargs)


def run(args: argparse.Namespace) -> int:
    """``crossloop parity``: print the table, write report.json and parity.png;
    exit 1 when a tolerance is exceeded (the message names step and tensor)."""
    try:
        backends = [name.strip() for name in args.backends.split(",") if name.strip()]
        opt = optimizer_from_args(args)
        tolerance = dataclasses.replace(Tolerance.default(args.dtype), **{
            f.name: getattr(args, f"tol_{f.name}") for f in dataclasses.fields(Tolerance)
            if getattr(args, f"tol_{f.name}") is not None})
        spec = nn.preset(args.model)
        dataset = load_dataset(args.dataset, args.data_dir)
    except (ValueError, OSError) as exc:
        print(f"crossloop parity: {exc}", file=sys.stderr)
        return 2
    train = Batches.from_dataset(dataset, "train", args.batch_size, seed=args.seed, dtype=args.dtype)
    print(f"parity: {spec.name} on {args.dataset}, batch {args.batch_size}, {args.steps} steps, "
          f"{args.dtype}, {type(opt).__name__}, {' vs '.join(backends)}", flush=True)
    report = run_parity(spec, opt, train, steps=args.steps, backends=backends, dtype=args.dtype,
                        seed=args.seed, tolerance=tolerance, device=args.device,
                        config={"dataset": args.dataset, "batch_size": args.batch_size})
    print(report.table(args.rows))
    print(report.summary())
    paths = report.save(args.out, plot=not args.no_plot)
    print(f"wrote {', '.join(str(p) for p in paths)} ({report.seconds:.1f}s)")
    return 0 if report.passed else 1
