"""Which Keras backend a part of the project needs, and a clear error where it is missing.

The model library (`GhostNet`, blocks, `ghostify`, Ghost-ResNet-50, the CIFAR models, weight
loading, `profile`, `feature_extractor`, ONNX export) runs on the tensorflow, jax and torch
Keras backends without TensorFlow installed. The trainer, QAT, TFLite conversion and the TF
Serving export are TensorFlow programs: they call `require_tensorflow` before importing it.
This module imports neither Keras nor a backend (the training programs configure TensorFlow
before it is imported).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


class BackendError(ImportError):
    """A part of the project was used on a Keras backend (or install) it does not support."""


def active_backend() -> str:
    """The Keras backend in use, or the one Keras will pick (without importing Keras)."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return keras.backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def require_tensorflow(feature: str, *, backend: bool = True) -> None:
    """Raises `BackendError` naming `feature` unless TensorFlow can serve it.

    Args:
        feature: what the caller is, for the message (e.g. "The TF Serving export").
        backend: also require the TensorFlow Keras backend (`KERAS_BACKEND=tensorflow`), not
            only an installed `tensorflow` (tf.data input pipelines work under any backend).
    """
    active = active_backend()
    if backend and active != "tensorflow":
        raise BackendError(
            f"{feature} needs the TensorFlow Keras backend; the active backend is {active!r}. "
            "Run it with KERAS_BACKEND=tensorflow (and `pip install ghostnet-keras[tensorflow]`)."
        )
    if importlib.util.find_spec("tensorflow") is None:
        raise BackendError(
            f"{feature} needs TensorFlow, which is not installed: "
            "pip install ghostnet-keras[tensorflow]"
        )
