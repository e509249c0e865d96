"""Choosing a backend: argument > $CROSSLOOP_BACKEND > default; clear errors; no framework on import."""

import subprocess
import sys
from importlib import metadata

import pytest

import crossloop
from crossloop import registry


def test_available_backends_lists_both_installed():
    assert crossloop.available_backends() == ["tensorflow", "torch"]


def test_choice_order(monkeypatch):
    monkeypatch.setenv("CROSSLOOP_BACKEND", "tensorflow")
    assert registry.choose_backend_name("torch") == "torch"
    assert registry.choose_backend_name(None) == "tensorflow"
    monkeypatch.delenv("CROSSLOOP_BACKEND")
    assert registry.choose_backend_name(None) == "torch"


def test_env_var_picks_backend(monkeypatch):
    monkeypatch.setenv("CROSSLOOP_BACKEND", "tensorflow")
    assert crossloop.get_backend(device="cpu").name == "tensorflow"


def test_unknown_backend_lists_installed():
    with pytest.raises(crossloop.BackendError, match=r"unknown backend 'jax'.*tensorflow, torch"):
        crossloop.get_backend("jax")


def test_bad_device_is_named():
    with pytest.raises(crossloop.BackendError, match="device='tpu'"):
        crossloop.get_backend("torch", device="tpu")


def test_missing_framework_says_which_extra(monkeypatch):
    broken = metadata.EntryPoint("torch", "crossloop_missing_framework:Backend", "crossloop.backends")
    monkeypatch.setattr(registry, "_entry_points", lambda: {"torch": broken})
    with pytest.raises(crossloop.BackendNotInstalledError, match=r"install crossloop\[torch\]"):
        crossloop.get_backend("torch")


def test_absent_gpu_is_a_clear_error(backend):
    if backend.device == "gpu":
        pytest.skip("this machine has a GPU")
    with pytest.raises(crossloop.BackendError, match="device='gpu'.*sees no GPU"):
        crossloop.get_backend(backend.name, device="gpu")


def test_backends_satisfy_protocol(backend):
    assert isinstance(backend, crossloop.Backend)


def test_import_crossloop_imports_no_framework():
    code = ("import sys, crossloop, crossloop.data, crossloop.commands, crossloop.native, "
            "crossloop.transfer, crossloop.compare, crossloop.commands.compare_models; "
            "crossloop.available_backends(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'tensorflow', 'keras', 'jax')); print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_choosing_torch_does_not_import_tensorflow():
    code = ("import sys, crossloop; crossloop.get_backend('torch', device='cpu'); "
            "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
