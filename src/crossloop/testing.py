"""pytest helpers for testing code on every installed backend.

Use the fixtures in your own suite by adding to your ``conftest.py``::

    pytest_plugins = ["crossloop.testing"]

then write ``def test_x(backend): ...`` and it runs once per installed backend.
"""

from __future__ import annotations

import pytest

from .backend import available_backends, get_backend


@pytest.fixture(params=available_backends())
def backend(request):
    """Each installed backend, on the CPU (so results are comparable and exact)."""
    return get_backend(request.param, device="cpu")
