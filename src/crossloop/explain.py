"""What each backend actually calls, phase by phase, read from the backends' own source.

``crossloop explain`` shows, for every loop phase, the PyTorch backend's code
beside the TensorFlow backend's, with one line on what differs and why. The code
is read from the installed backend files when the command runs (located with
``importlib.util.find_spec`` and cut out with ``ast``, without importing either
framework), so what it shows can never drift from what runs. A method a backend
inherits is shown from :class:`crossloop.backend.BaseBackend`, marked shared.
"""

from __future__ import annotations

import ast
import html
import shutil
import textwrap
from dataclasses import dataclass, replace
from functools import cache
from importlib.util import find_spec
from pathlib import Path

from .errors import InputError

BASE = "crossloop.backend:BaseBackend"


@dataclass(frozen=True)
class Phase:
    """One loop phase: what it is called, the code each backend runs for it (as
    ``module:Qualified.name`` references), and what differs between them and why."""
    title: str
    torch: tuple[str, ...]
    tensorflow: tuple[str, ...]
    differs: str


PHASES: dict[str, Phase] = {p.title.split("(")[0].split(":")[0].strip().replace(" ", "_"): p for p in (
    Phase("forward(model, x, training)",
          ("crossloop_torch.backend:TorchBackend.forward",),
          ("crossloop_tensorflow.backend:TensorFlowBackend.forward",),
          "torch puts the whole module in train or eval mode (dropout, BatchNorm) and turns "
          "autograd off outside training; Keras passes training= into every layer call and "
          "records operations only inside a GradientTape."),
    Phase("loss(spec, logits, y)",
          ("crossloop_torch.backend:TorchBackend.loss",),
          ("crossloop_tensorflow.backend:TensorFlowBackend.loss",),
          "F.cross_entropy reduces to the batch mean itself and wants the classes on axis 1, "
          "so sequence logits (N, T, C) are flattened; tf.nn's sparse softmax cross-entropy "
          "returns one loss per example over the last axis, which crossloop averages."),
    Phase("gradients(model, loss, x, y)",
          ("crossloop_torch.backend:TorchBackend.gradients",
           "crossloop_torch.backend:TorchBackend._weighted_gradients"),
          ("crossloop_tensorflow.backend:TensorFlowBackend.gradients",
           "crossloop_tensorflow.backend:TensorFlowBackend._weighted_gradients"),
          "torch records every operation on parameters and loss.backward() accumulates into "
          "each .grad, so crossloop clears them first; TensorFlow records only on the tape "
          "around the forward pass, and tape.gradient returns new tensors."),
    Phase("apply_gradients(optimizer, model, grads)",
          ("crossloop_torch.backend:TorchBackend.apply_gradients",
           "crossloop_torch.optimizers:clip_by_global_norm"),
          ("crossloop_tensorflow.backend:TensorFlowBackend.apply_gradients",
           "crossloop_tensorflow.optimizers:clip_by_global_norm"),
          "torch's optimizer.step() updates each parameter in place from its .grad with "
          "torch's formulas (below: the function it runs on a CPU); crossloop's Keras "
          "optimizers compute the same formulas in update_step, and both clip by torch's "
          "global-norm rule, with its 1e-6."),
    Phase("metric update(metrics, loss, logits, y)",
          ("crossloop_torch.metrics:Metrics.update",),
          ("crossloop_tensorflow.metrics:Metrics.update",),
          "torch adds into device tensors in place; TensorFlow assign_adds tf.Variables, which "
          "a traced step can update inside its graph. Neither waits for the host."),
    Phase("metric result(metrics)",
          ("crossloop_torch.metrics:Metrics.results",),
          ("crossloop_tensorflow.metrics:Metrics.results",),
          "reading a device value (.item(), .numpy()) waits for the device, so crossloop reads "
          "the running sums once per epoch or display refresh, never once per step."),
    Phase("metric reset(metrics)",
          ("crossloop_torch.metrics:Metrics.reset",),
          ("crossloop_tensorflow.metrics:Metrics.reset",),
          "the same zeroing: zero_() on torch tensors, assign(zeros) on tf.Variables."),
    Phase("train_step: the fused step",
          ("crossloop_torch.backend:TorchBackend.train_step",),
          ("crossloop_tensorflow.backend:TensorFlowBackend.train_step",
           "crossloop.backend:BaseBackend.train_step"),
          "both run the same composition of the phases (written once, in BaseBackend); "
          "TensorFlow traces it into one graph, torch runs it eagerly, operation by operation."),
    Phase("no_tf32(): full float32 on NVIDIA GPUs",
          ("crossloop_torch.backend:TorchBackend.no_tf32",),
          ("crossloop_tensorflow.backend:TensorFlowBackend.no_tf32",),
          "Ampere and later GPUs can run float32 matmuls and convolutions in TF32 (10-bit "
          "mantissa); torch has two switches, matmuls off and cuDNN convolutions on by "
          "default, TensorFlow one, on. Training keeps each default; parity runs switch both "
          "off, so float32 means float32 on both."),
    Phase("compiled step",
          ("crossloop_torch.backend:TorchBackend._runnable",),
          ("crossloop_tensorflow.backend:TensorFlowBackend._run",),
          "torch.compile compiles the model's forward (and its backward) when asked "
          "(compile=True); TensorFlow always traces the step with tf.function, once per input "
          "signature, XLA with jit_compile=True, and crossloop calls the traced function "
          "directly."),
)}


# Each optimizer's update, shown in the apply_gradients phase: the torch.optim function
# optimizer.step() runs on a CPU (torch's own source), crossloop's Keras update_step,
# and how Keras's stock optimizer differs.
UPDATES: dict[str, tuple[str, str, str]] = {
    "sgd": ("torch.optim.sgd:_single_tensor_sgd", "SGD",
            "Keras's SGD keeps v = mu*v - lr*g, so its velocity carries old learning rates"),
    "adam": ("torch.optim.adam:_single_tensor_adam", "Adam",
             "Keras's Adam adds its eps (1e-7) to the uncorrected sqrt(v)"),
    "adamw": ("torch.optim.adam:_single_tensor_adam", "Adam",
              "torch's AdamW is Adam with decoupled_weight_decay; Keras's default decay is 0.004"),
    "rmsprop": ("torch.optim.rmsprop:_single_tensor_rmsprop", "RMSprop",
                "Keras's RMSprop (rho 0.9) adds eps inside the sqrt and keeps lr in its momentum"),
    "adagrad": ("torch.optim.adagrad:_single_tensor_adagrad", "Adagrad",
                "Keras's Adagrad starts its accumulator at 0.1 and adds eps inside the sqrt"),
    "adadelta": ("torch.optim.adadelta:_single_tensor_adadelta", "Adadelta",
                 "Keras's Adadelta has the same rule with lr 0.001, rho 0.95, eps 1e-7"),
}


class ExplainError(InputError, LookupError):
    """A phase or a backend's source cannot be found."""


@dataclass(frozen=True)
class Source:
    """The source of one function or method as it is in its file now."""
    ref: str          # what was asked for
    path: Path
    line: int
    code: str
    shared: bool = False   # inherited from BaseBackend

    @property
    def label(self) -> str:
        where = f"{self.path.parent.name}/{self.path.name}:{self.line}"
        name = self.ref.split(":")[1]
        return f"{name} ({where}{', shared: BaseBackend' if self.shared else ''})"


def source(ref: str) -> Source:
    """The current source of ``module:Qualified.name``; a backend method the class
    does not define is looked up in :class:`~crossloop.backend.BaseBackend`."""
    module, _, qualname = ref.partition(":")
    path, tree, text = _parse(module)
    node = _find(tree, qualname.split("."))
    if node is None and "." in qualname:
        owner, method = qualname.rsplit(".", 1)
        if any(_base_names(_find(tree, owner.split("."))) & {"BaseBackend"}):
            found = source(f"{BASE}.{method}")
            return Source(ref, found.path, found.line, found.code, shared=True)
    if node is None:
        raise ExplainError(f"{qualname} is not in {path}; the phase catalogue in "
                           "crossloop/explain.py names code that no longer exists")
    code = textwrap.dedent(ast.get_source_segment(text, node, padded=True) or "")
    head = "".join(f"@{ast.get_source_segment(text, d)}\n" for d in node.decorator_list)
    line = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    return Source(ref, path, line, head + code)


@cache
def _parse(module: str) -> tuple[Path, ast.Module, str]:
    """The file, syntax tree and text of ``module``, found without importing it (nor its
    package: a backend package imports its framework)."""
    top, *rest = module.split(".")
    spec = find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise ExplainError(f"cannot find package {top}; install crossloop with its backends")
    path = Path(next(iter(spec.submodule_search_locations)), *rest).with_suffix(".py")
    if not path.is_file():
        raise ExplainError(f"cannot find module {module} (no {path})")
    text = path.read_text(encoding="utf-8")
    return path, ast.parse(text), text


def _find(tree: ast.AST | None, names: list[str]) -> ast.AST | None:
    for name in names:
        body = getattr(tree, "body", [])
        tree = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                     and n.name == name), None)
    return tree


def _base_names(node: ast.AST | None) -> set[str]:
    return {b.id for b in getattr(node, "bases", []) if isinstance(b, ast.Name)}


def phases(name: str | None = None, optimizer: str = "adam") -> list[Phase]:
    """Every phase, or the one called ``name`` (e.g. ``apply_gradients``), with
    ``optimizer``'s update in the apply_gradients phase."""
    if optimizer not in UPDATES:
        raise ExplainError(f"unknown optimizer {optimizer!r}; choose from {', '.join(UPDATES)}")
    torch_ref, keras_class, keras_differs = UPDATES[optimizer]
    apply = PHASES["apply_gradients"]
    chosen = {**PHASES, "apply_gradients": replace(
        apply, torch=(*apply.torch, torch_ref),
        tensorflow=(*apply.tensorflow, f"crossloop_tensorflow.optimizers:{keras_class}.update_step"),
        differs=f"{apply.differs} {keras_differs}.")}
    if name is None:
        return list(chosen.values())
    key = name.replace("-", "_").replace(" ", "_")
    if key not in chosen:
        raise ExplainError(f"unknown phase {name!r}; choose from {', '.join(chosen)}")
    return [chosen[key]]


def render_text(selected: list[Phase], width: int | None = None) -> str:
    """The phases as two columns, PyTorch left, TensorFlow right."""
    width = width or shutil.get_terminal_size((160, 40)).columns
    column = max(30, (width - 3) // 2)
    out = []
    for phase in selected:
        left = _column([source(r) for r in phase.torch], "PyTorch", column)
        right = _column([source(r) for r in phase.tensorflow], "TensorFlow", column)
        out.append(f"== {phase.title} " + "=" * max(0, 2 * column - len(phase.title) - 1))
        rows = max(len(left), len(right))
        left += [""] * (rows - len(left))
        right += [""] * (rows - len(right))
        out += [f"{a:<{column}} | {b}".rstrip() for a, b in zip(left, right)]
        out += textwrap.wrap(f"what differs: {phase.differs}", 2 * column + 3) + [""]
    return "\n".join(out)


def _column(sources: list[Source], framework: str, width: int) -> list[str]:
    lines = []
    for src in sources:
        lines += textwrap.wrap(f"{framework}: {src.label}", width) + ["-" * min(width, 40)]
        for line in src.code.rstrip().splitlines():
            lines += textwrap.wrap(line, width, subsequent_indent="    ", drop_whitespace=False,
                                   replace_whitespace=False) or [""]
        lines.append("")
    return lines


def render_markdown(selected: list[Phase]) -> str:
    """The phases as Markdown: a two-column table of code, then what differs."""
    out = []
    for phase in selected:
        cells = []
        for refs in (phase.torch, phase.tensorflow):
            blocks = [f"<b>{html.escape(s.label)}</b><pre>{html.escape(s.code.rstrip())}</pre>"
                      for s in map(source, refs)]
            cells.append("".join(blocks))
        out += [f"### {phase.title}", "",
                "<table><tr><th>PyTorch</th><th>TensorFlow</th></tr>",
                f'<tr><td valign="top">{cells[0]}</td><td valign="top">{cells[1]}</td></tr>'
                "</table>", "", f"**What differs:** {phase.differs}", ""]
    return "\n".join(out)
