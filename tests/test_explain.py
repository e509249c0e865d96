"""``crossloop explain`` shows each phase's code as the backends have it now."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap

import pytest

from crossloop import commands
from crossloop.explain import PHASES, UPDATES, phases, render_markdown, render_text, source


def _live(ref: str):
    """The object ``module:Qualified.name`` refers to, imported the ordinary way."""
    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for name in qualname.split("."):
        obj = getattr(obj, name)
    return inspect.unwrap(obj)  # a @contextmanager's own function, as its source shows it


@pytest.mark.parametrize("optimizer", list(UPDATES))
@pytest.mark.parametrize("name", list(PHASES))
def test_every_phase_shows_the_current_source(name, optimizer):
    """Nothing in the backends is changed: every reference each phase shows, with each
    optimizer's update (torch's own function and crossloop's Keras update_step), is
    the source Python imports now, at the same file and line."""
    phase, = phases(name, optimizer)
    for ref in (*phase.torch, *phase.tensorflow):
        shown = source(ref)
        live = _live(ref)
        assert shown.code.rstrip() == textwrap.dedent(inspect.getsource(live)).rstrip(), ref
        assert shown.line == inspect.getsourcelines(live)[1]
        assert shown.path.samefile(inspect.getsourcefile(live))


def test_an_inherited_method_is_shown_from_the_base_class():
    shown = source("crossloop_torch.backend:TorchBackend.train_step")
    assert shown.shared and shown.path.name == "backend.py" and shown.path.parent.name == "crossloop"
    assert "shared: BaseBackend" in shown.label


def test_apply_gradients_shows_the_chosen_optimizers_update(capsys):
    assert commands.main(["explain", "--phase", "apply_gradients", "--optimizer", "rmsprop",
                          "--width", "160"]) == 0
    out = capsys.readouterr().out
    assert "_single_tensor_rmsprop" in out and "RMSprop.update_step" in out
    assert "Adam.update_step" not in out and "RMSprop (rho 0.9) adds eps inside" in out
    with pytest.raises(SystemExit) as exit_:
        commands.main(["explain", "--optimizer", "lamb"])
    assert exit_.value.code == 2


def test_text_and_markdown_carry_both_frameworks_code_and_the_difference():
    text = render_text(phases("apply_gradients"), width=150)
    assert "optimizer.native.step()" in text and "optimizer.native.apply_gradients(" in text
    assert "what differs:" in text and max(map(len, text.splitlines())) <= 150
    markdown = render_markdown(phases())
    assert markdown.count("<table>") == len(PHASES) and "loss.backward()" in markdown


def test_the_command_and_its_errors(capsys):
    assert commands.main(["explain", "--phase", "gradients", "--width", "120"]) == 0
    assert "tf.GradientTape()" in capsys.readouterr().out
    assert all(name.isidentifier() for name in PHASES), list(PHASES)  # typed as --phase NAME
    assert commands.main(["explain", "--phase", "train_step", "--width", "120"]) == 0
    assert "def train_step" in capsys.readouterr().out
    for bad in (["--phase", "backprop"], ["--width", "10"], ["--width", "-5"]):
        with pytest.raises(SystemExit) as exit_:
            commands.main(["explain", *bad])
        assert exit_.value.code == 2


def test_explaining_imports_no_framework():
    code = ("import sys; from crossloop.explain import phases, render_text; render_text(phases()); "
            "print(sorted({'torch', 'tensorflow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
