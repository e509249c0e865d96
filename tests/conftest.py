import os

import pytest

pytest_plugins = ["crossloop.testing"]


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from $CROSSLOOP_DATA (the README and CI set it); skip without it."""
    from crossloop.data import load_mnist
    if not os.environ.get("CROSSLOOP_DATA"):
        pytest.skip("set CROSSLOOP_DATA to the folder holding mnist/ to run real-data tests")
    return load_mnist(download=False)
