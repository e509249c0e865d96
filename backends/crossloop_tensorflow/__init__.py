"""crossloop's TensorFlow backend (registered as ``tensorflow`` in ``crossloop.backends``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the console
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the Keras layers here must run on TensorFlow

from .backend import TensorFlowBackend  # noqa: E402

__all__ = ["TensorFlowBackend"]
