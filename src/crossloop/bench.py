"""``crossloop bench``: crossloop's training step against hand-written loops, side by side.

Every contender trains the same model (built by the backend from the same spec
and initial parameters) with Adam on the same MNIST batches
(:class:`~crossloop.data.Batches`):

    torch-hand        the PyTorch tutorial's loop (crossloop_torch/baseline.py)
    torch-crossloop   crossloop's Trainer on the torch backend
    tf-hand           the TensorFlow guide's tf.function GradientTape step
                      (crossloop_tensorflow/baseline.py)
    tf-crossloop      crossloop's Trainer on the tensorflow backend
    keras-fit         Keras ``model.fit``
  and with --compiled:
    torch-hand-compile, torch-crossloop-compile   the model under torch.compile
    tf-hand-xla, tf-crossloop-xla                 the step with jit_compile=True (XLA)

Each contender runs in a fresh process per repetition, so its peak RSS is its
own and no contender inherits another's warm caches. Repetitions alternate the
contenders (reversing their order every other time), a crossloop/hand-written
ratio is taken within each repetition, between runs next to each other, and
the median over repetitions is reported. Warm-up steps (tracing, compiling)
are not timed. The children run with fixed glibc malloc thresholds
(:data:`STABLE_MALLOC`), the same for every contender, and a run during which
other processes took more than :data:`BUSY_SHARE` of the CPUs is repeated (up
to :data:`RETRIES` times; the least disturbed run counts), so a shared
machine's other jobs do not decide the ratios. ``python -m crossloop.bench
CONFIG`` is the child process.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import nn, optim
from .callbacks import Callback
from .data import Batches, DatasetNotFoundError, load_mnist
from .loop import Trainer

LR = 1e-3
SEED = 0


@dataclass(frozen=True)
class Contender:
    """One way to train: ``kind`` is "hand", "crossloop" or "keras-fit"; ``options`` go
    to the hand-written loop or to the backend (``compile``, ``jit_compile``)."""
    name: str
    framework: str
    kind: str
    options: tuple[tuple[str, Any], ...] = ()


CONTENDERS = {c.name: c for c in (
    Contender("torch-hand", "torch", "hand"),
    Contender("torch-crossloop", "torch", "crossloop"),
    Contender("tf-hand", "tensorflow", "hand"),
    Contender("tf-crossloop", "tensorflow", "crossloop"),
    Contender("keras-fit", "tensorflow", "keras-fit"),
    Contender("torch-hand-compile", "torch", "hand", (("compile", True),)),
    Contender("torch-crossloop-compile", "torch", "crossloop", (("compile", True),)),
    Contender("tf-hand-xla", "tensorflow", "hand", (("jit_compile", True),)),
    Contender("tf-crossloop-xla", "tensorflow", "crossloop", (("jit_compile", True),)),
)}
DEFAULT_CONTENDERS = ("torch-hand", "torch-crossloop", "tf-hand", "tf-crossloop", "keras-fit")
COMPILED_CONTENDERS = ("torch-hand-compile", "torch-crossloop-compile", "tf-hand-xla",
                       "tf-crossloop-xla")

# (crossloop, reference, target): crossloop's throughput over the reference's must reach target.
RATIOS = (("torch-crossloop", "torch-hand", 0.97),
          ("torch-crossloop-compile", "torch-hand-compile", 0.97),
          ("tf-crossloop", "tf-hand", 0.97),
          ("tf-crossloop-xla", "tf-hand-xla", 0.97),
          ("tf-crossloop", "keras-fit", 1.0))
# glibc malloc hands freed heap tops back to the OS (and maps big blocks) by thresholds it
# adapts to the process's history, so whether a step's large tensors page-fault afresh
# (thousands of faults a step) differs from one process to the next, and conv1's
# throughput flips between two modes regardless of the loop. Fixed thresholds give every
# contender the same fault-free allocator; --default-malloc measures without them.
STABLE_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(2**30), "MALLOC_MMAP_THRESHOLD_": str(2**25)}
# Others' share of the machine's CPU time while a contender ran, above which its run is
# repeated (up to RETRIES times): a shared machine's other jobs would otherwise decide
# the ratios.
BUSY_SHARE = 0.10
RETRIES = 1
RSS_TARGET = 1.10  # crossloop's peak RSS over the hand-written loop's, same framework
BUSY_LOAD = 0.5    # a 1-minute load average above this at the start: warn that others ran


# -- the command ------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", choices=sorted(nn.PRESETS),
                        default=["conv1", "lenet5"])
    parser.add_argument("--batch-sizes", nargs="+", type=_positive, default=[32, 256])
    parser.add_argument("--reps", type=_positive, default=7, help="alternating repetitions")
    parser.add_argument("--samples", type=_positive, default=2048,
                        help="samples per timed epoch (steps = samples // batch size)")
    parser.add_argument("--epochs", type=_positive, default=3,
                        help="timed epochs per measurement; the median epoch counts")
    parser.add_argument("--warmup-steps", type=_positive, default=10,
                        help="untimed steps first (tracing, compiling, allocator warm-up)")
    parser.add_argument("--compiled", action="store_true",
                        help="add the torch.compile and XLA contenders (several minutes more)")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), metavar="NAME",
                        help=f"run exactly these, of: {' '.join(CONTENDERS)}; unset: "
                             f"{' '.join(DEFAULT_CONTENDERS)}, plus with --compiled the rest")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc's adaptive thresholds on (see STABLE_MALLOC)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repetition of a few steps (numbers mean nothing)")
    parser.add_argument("--data-dir",
                        help="folder with the MNIST IDX files; unset: $CROSSLOOP_DATA/mnist, "
                             "then the cache")
    parser.add_argument("--output", default="loop_overhead.json", help="JSON results file")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print a markdown report, write JSON; 1 if a contender failed."""
    names = args.contenders or [*DEFAULT_CONTENDERS,
                                *(COMPILED_CONTENDERS if args.compiled else ())]
    settings = {"models": args.models, "batch_sizes": args.batch_sizes, "reps": args.reps,
                "samples": args.samples, "epochs": args.epochs, "warmup_steps": args.warmup_steps,
                "data_dir": args.data_dir, "contenders": names,
                "malloc_env": {} if args.default_malloc else STABLE_MALLOC, "retries": RETRIES}
    if args.quick:
        settings.update(reps=1, samples=2 * max(args.batch_sizes), epochs=1, warmup_steps=1,
                        retries=0)
    try:
        load_mnist(args.data_dir)  # fail early, and leave the decoded cache for the children
    except DatasetNotFoundError as exc:
        print(f"crossloop bench: error: {exc}", file=sys.stderr)
        return 1
    started, load_before = time.perf_counter(), _load_average()
    runs = []
    for rep in range(settings["reps"]):
        for name in names if rep % 2 == 0 else names[::-1]:
            label = f"[rep {rep + 1}/{settings['reps']}]"
            result = measure_quietly(CONTENDERS[name], settings, label)
            result["rep"] = rep
            runs.append(result)
    results = {"command": _command(), "machine": machine(), "settings": settings,
               "startup": startup(runs), "seconds": time.perf_counter() - started,
               "load_average": {"before": load_before, "after": _load_average()}, "runs": runs}
    results.update(summarize(runs, names))
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(f"{report(results)}\n\nwrote {args.output}")
    return 1 if any("error" in r for r in runs) else 0


def measure_quietly(contender: Contender, settings: dict, label: str) -> dict:
    """Run ``contender`` once, again (up to ``settings['retries']`` times) while other
    processes took more than BUSY_SHARE of the CPUs; the least disturbed run counts."""
    result = _spawn(contender, settings)
    for _ in range(settings["retries"]):
        if result.get("others_cpu_share", 0) <= BUSY_SHARE:
            break
        print(f"{label} {contender.name}: other processes used {result['others_cpu_share']:.0%} "
              "of the CPUs; running it again", flush=True)
        result = min(result, _spawn(contender, settings),
                     key=lambda r: r.get("others_cpu_share", 0))
    print(f"{label} {_progress(result)}", flush=True)
    return result


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _command() -> str:
    """How this run was started, as one would type it."""
    prog = Path(sys.argv[0]).name
    return shlex.join([prog] if prog == "crossloop" else ["python", sys.argv[0]]) + \
        "".join(" " + shlex.quote(a) for a in sys.argv[1:])


def _spawn(contender: Contender, settings: dict) -> dict:
    """Run one contender in a fresh interpreter; its result (with the share of the
    machine's CPU time that other processes took meanwhile), or its error."""
    with tempfile.TemporaryDirectory(prefix="crossloop-bench-") as tmp:
        out = Path(tmp) / "result.json"
        config = {**settings, "contender": contender.name, "out": str(out)}
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", **settings["malloc_env"], **os.environ}
        busy, own, wall = _cpu_busy_seconds(), _children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "crossloop.bench", json.dumps(config)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0 or not out.exists():
            return {"contender": contender.name,
                    "error": f"exit {proc.returncode}: {proc.stdout[-2000:]}"}
        result = json.loads(out.read_text())
        if busy is not None:
            others = (_cpu_busy_seconds() - busy) - (_children_cpu_seconds() - own)
            result["others_cpu_share"] = max(0.0, others) / (
                (time.perf_counter() - wall) * (os.cpu_count() or 1))
        return result


def _cpu_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot (Linux), None elsewhere."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _progress(result: dict) -> str:
    if "error" in result:
        return f"{result['contender']}: FAILED\n{result['error']}"
    speeds = "  ".join(f"{c['model']}/{c['batch_size']} {c['samples_per_second']:.0f}"
                       for c in result["configs"])
    return (f"{result['contender']:<24} samples/s: {speeds}  "
            f"peak RSS {result['peak_rss_mb']:.0f} MB")


# -- the child: one contender, every model and batch size ---------------------------

def measure(config: dict) -> dict:
    """Train ``config['contender']`` on every (model, batch size): warm-up steps, then
    ``epochs`` timed epochs of ``samples // batch_size`` steps; a measurement's
    throughput is its median epoch's (robust to a stall of the shared machine)."""
    started = time.perf_counter()
    dataset = load_mnist(config["data_dir"], download=False)
    load_seconds = time.perf_counter() - started
    images, labels = dataset.train_images, dataset.train_labels
    contender = CONTENDERS[config["contender"]]
    configs = []
    for model in config["models"]:
        spec = nn.preset(model)
        params = nn.init_params(spec, SEED)
        for batch_size in config["batch_sizes"]:
            steps = max(1, config["samples"] // batch_size)
            n, w = steps * batch_size, config["warmup_steps"] * batch_size
            train = Batches(images[:n], labels[:n], batch_size, seed=SEED, drop_last=True)
            warm = Batches(images[-w:], labels[-w:], batch_size, seed=SEED, drop_last=True)
            train_epochs = _contender_loop(contender, spec, params)
            train_epochs(warm, 0, 1)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            seconds = train_epochs(train, 1, config["epochs"])
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            configs.append({"model": model, "batch_size": batch_size, "steps": steps,
                            "epoch_seconds": seconds,
                            "samples_per_second": n / statistics.median(seconds),
                            "page_faults_per_step": faults / (steps * config["epochs"])})
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return {"contender": contender.name, "configs": configs, "peak_rss_mb": peak / 2**20,
            "load_mnist_seconds": load_seconds, "seconds": time.perf_counter() - started}


class _EpochTimer(Callback):
    """Each epoch's seconds, from ``on_epoch_start`` to ``on_epoch_end`` (metrics read)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.seconds.append(time.perf_counter() - self._started)


def _contender_loop(contender: Contender, spec, params) -> Callable[[Any, int, int], list[float]]:
    """``train_epochs(batches, first_epoch, epochs)`` for ``contender``: trains those
    epochs of ``batches`` and returns each one's seconds, from its start to the end
    of its metrics read-out."""
    options = dict(contender.options)
    if contender.kind == "crossloop":
        timer = _EpochTimer()
        trainer = Trainer(spec, optim.Adam(LR), backend=contender.framework, device="cpu",
                          seed=SEED, params=params, callbacks=[timer], **options)

        def train_crossloop(batches, first, epochs):
            timer.seconds = []
            trainer.fit(batches, epochs=first + epochs)  # trainer.epoch == first
            return timer.seconds
        return train_crossloop

    baseline = importlib.import_module(f"crossloop_{contender.framework}.baseline")
    if contender.kind == "keras-fit":
        keras_fit = baseline.KerasFit(spec, params, LR)

        def train_keras(batches, first, epochs):
            xs, ys = zip(*batches.epoch(first))  # fit takes whole arrays, in this order
            return keras_fit.train(np.concatenate(xs), np.concatenate(ys), batches.batch_size,
                                   epochs)
        return train_keras

    loop = baseline.HandWrittenLoop(spec, params, LR, **options)

    def train_hand(batches, first, epochs):
        seconds = []
        for epoch in range(first, first + epochs):
            tick = time.perf_counter()
            loop.train_epoch(batches.epoch(epoch))
            seconds.append(time.perf_counter() - tick)
        return seconds
    return train_hand


# -- summary and report -------------------------------------------------------------

def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize(runs: list[dict], names: list[str]) -> dict:
    """Throughput per (model, batch, contender), paired ratios, peak RSS per contender."""
    ok = [r for r in runs if "error" not in r]
    speed: dict[tuple[str, int], dict[str, dict[int, float]]] = {}  # (model, batch) -> name -> rep
    for r in ok:
        for c in r["configs"]:
            by_name = speed.setdefault((c["model"], c["batch_size"]), {})
            by_name.setdefault(r["contender"], {})[r["rep"]] = c["samples_per_second"]
    throughput = [{"model": m, "batch_size": b, "contender": n, **_stats(list(reps.values()))}
                  for (m, b), by_name in speed.items() for n, reps in by_name.items()]
    ratios = []
    for (m, b), by_name in speed.items():
        for num, den, target in RATIOS:
            paired = [v / by_name[den][rep] for rep, v in by_name.get(num, {}).items()
                      if rep in by_name.get(den, {})]
            if paired:
                stats = _stats(paired)
                ratios.append({"model": m, "batch_size": b, "crossloop": num, "reference": den,
                               "target": target, "meets_target": stats["median"] >= target,
                               **stats})
    rss = {n: _stats(values) for n in names
           if (values := [r["peak_rss_mb"] for r in ok if r["contender"] == n])}
    rss_ratios = []
    for num, den, _ in RATIOS:
        if CONTENDERS[den].kind == "hand" and num in rss and den in rss:
            ratio = rss[num]["median"] / rss[den]["median"]
            rss_ratios.append({"crossloop": num, "reference": den, "ratio": ratio,
                               "target": RSS_TARGET, "meets_target": ratio <= RSS_TARGET})
    return {"throughput": throughput, "ratios": ratios, "peak_rss_mb": rss,
            "rss_ratios": rss_ratios}


def startup(runs: list[dict], tries: int = 5) -> dict:
    """``import crossloop`` in fresh interpreters (median seconds; frameworks it loaded)
    and the children's MNIST load time."""
    probe = ("import json, sys, time; t = time.perf_counter(); import crossloop; "
             "t = time.perf_counter() - t; print(json.dumps([t, sorted({'torch', 'tensorflow', "
             "'numpy'} & set(sys.modules))]))")
    out = [json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                     text=True, check=True).stdout) for _ in range(tries)]
    loads = [r["load_mnist_seconds"] for r in runs if "error" not in r]
    return {"import_crossloop_seconds": statistics.median(t for t, _ in out),
            "modules_loaded_by_import": out[0][1],
            "load_mnist_seconds": statistics.median(loads) if loads else None}


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    versions = {}
    for dist in ("numpy", "torch", "tensorflow", "tensorflow-cpu", "keras"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu or platform.processor(), "nproc": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions}


def _load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _loads(loads: list[float] | None) -> str:
    return "n/a" if loads is None else " ".join(f"{x:.2f}" for x in loads)


def _cell(stats: dict[str, float], fmt: str = ".0f") -> str:
    return f"{stats['median']:{fmt}} ({stats['min']:{fmt}}–{stats['max']:{fmt}})"


def report(results: dict) -> str:
    """The results as markdown, ready for the README."""
    s, st = results["settings"], results["startup"]
    names = [n for n in s["contenders"] if n in results["peak_rss_mb"]]
    rows = sorted({(t["model"], t["batch_size"]) for t in results["throughput"]})
    speed = {(t["model"], t["batch_size"], t["contender"]): t for t in results["throughput"]}
    ratio = {(r["model"], r["batch_size"], r["crossloop"], r["reference"]): r
             for r in results["ratios"]}
    pairs = [(num, den) for num, den, _ in RATIOS if num in names and den in names]

    def ratio_cell(r: dict | None) -> str:
        if r is None:
            return "–"
        return _cell(r, ".3f") + ("" if r["meets_target"] else " **below target**")

    lines = [
        *_header(results), "",
        "Training throughput, samples/s: median (min–max) over the repetitions", "",
        _row(["model", "batch", *names]), _row(["---", "---:", *["---:"] * len(names)]),
        *(_row([mo, b, *(_cell(speed[mo, b, n]) if (mo, b, n) in speed else "–" for n in names)])
          for mo, b in rows), "",
        "crossloop / reference throughput, paired within each repetition: median (min–max); "
        "targets " + ", ".join(f"{a} / {b} ≥ {t}" for a, b, t in RATIOS if (a, b) in pairs), "",
        _row(["model", "batch", *(f"{a} / {b}" for a, b in pairs)]),
        _row(["---", "---:", *["---:"] * len(pairs)]),
        *(_row([mo, b, *(ratio_cell(ratio.get((mo, b, a, ref))) for a, ref in pairs)])
          for mo, b in rows), "",
        _row(["contender", "peak RSS, MB: median (min–max)"]), _row(["---", "---:"]),
        *(_row([n, _cell(results["peak_rss_mb"][n])]) for n in names), "",
        *(f"Peak RSS {r['crossloop']} / {r['reference']}: {r['ratio']:.3f} "
          f"(target ≤ {r['target']}{'' if r['meets_target'] else ', **above target**'})"
          for r in results["rss_ratios"]),
        f"Start-up: `import crossloop` {st['import_crossloop_seconds'] * 1000:.0f} ms "
        f"(loads {', '.join(st['modules_loaded_by_import']) or 'no framework, not even NumPy'})"
        + (f"; MNIST load {st['load_mnist_seconds'] * 1000:.0f} ms"
           if st["load_mnist_seconds"] is not None else ""),
    ]
    return "\n".join(lines)


def _header(results: dict) -> list[str]:
    """Command, machine and settings lines (and a warning if the machine was busy)."""
    m, s, load = results["machine"], results["settings"], results["load_average"]
    malloc = (" ".join(f"{k}={v}" for k, v in s["malloc_env"].items()) if s["malloc_env"]
              else "glibc's adaptive defaults")
    lines = [
        f"Command: `{results['command']}`",
        f"Machine: {m['cpu']}, {m['nproc']} CPUs, {m['platform']}; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"Settings: {s['reps']} alternating repetitions, each contender in a fresh process; "
        f"a measurement is the median of {s['epochs']} epochs of {s['samples']} samples after "
        f"{s['warmup_steps']} untimed warm-up steps; Adam lr {LR}, float32, CPU; malloc: "
        f"{malloc}. {results['seconds'] / 60:.1f} min in all; load average before / after: "
        f"{_loads(load['before'])} / {_loads(load['after'])}",
    ]
    shares = [r["others_cpu_share"] for r in results["runs"] if "others_cpu_share" in r]
    if shares:
        lines.append(f"Other processes took {statistics.median(shares):.1%} of the CPUs during a "
                     f"run (median; max {max(shares):.1%}); a run above {BUSY_SHARE:.0%} was "
                     f"repeated, up to {s['retries']} times.")
    if load["before"] and load["before"][0] > BUSY_LOAD:
        lines.append(f"**Warning**: the machine was busy (load average {load['before'][0]:.2f} "
                     "at the start): other processes competed for the CPUs; numbers are noisy.")
    return lines


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


if __name__ == "__main__":
    _config = json.loads(sys.argv[1])
    Path(_config["out"]).write_text(json.dumps(measure(_config)))
