"""MediaPipe's ImageClassifier as a client of our `.tflite` files, run in its own environment.

MediaPipe cannot share the project's environment (its absl-py~=2.3 pin conflicts with
tensorflow-model-optimization's absl-py~=1.2), so `tools/make_mediapipe_venv.sh` makes a venv
(`.venv-mediapipe` at the repository root; `make mediapipe-venv`) and `classify` runs
`mediapipe_client.py` there in a subprocess (which also keeps MediaPipe's native code, and its GPU
delegate's abort on exit, out of this process).

    from ghostnet_keras.tflite import mediapipe_runner
    result = mediapipe_runner.classify("ghostnet.tflite", [image_uint8_hw3], top_k=5)
    result.categories[0][0].category_name   # top-1 label of the first image, from the metadata
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLIENT = Path(__file__).with_name("mediapipe_client.py")
REPO_DIR = Path(__file__).resolve().parents[1]
VENV_SCRIPT = REPO_DIR / "tools" / "make_mediapipe_venv.sh"
# The venv: $GHOSTNET_MEDIAPIPE_VENV, else .venv-mediapipe at the repository root.
VENV_ENV = "GHOSTNET_MEDIAPIPE_VENV"
MAKE_HINT = "run `make mediapipe-venv` (tools/make_mediapipe_venv.sh) to create it"


class MediaPipeUnavailableError(RuntimeError):
    """The MediaPipe client environment does not exist or cannot be made."""


class MediaPipeError(RuntimeError):
    """MediaPipe refused the model or failed to classify."""


@dataclass(frozen=True)
class Category:
    """One of MediaPipe's top-k categories."""

    index: int
    score: float
    category_name: str | None


@dataclass(frozen=True)
class ClientResult:
    """What the client reported: MediaPipe's version, the metadata it read, the categories."""

    mediapipe_version: str
    metadata: dict[str, Any] | None
    categories: list[list[Category]]


def venv_dir() -> Path:
    """The MediaPipe venv folder ($GHOSTNET_MEDIAPIPE_VENV or `.venv-mediapipe`)."""
    return Path(os.environ.get(VENV_ENV) or REPO_DIR / ".venv-mediapipe")


def venv_python() -> Path:
    """The venv's interpreter.

    Raises:
        MediaPipeUnavailableError: the venv does not exist (the message says how to make it).
    """
    python = venv_dir() / "bin" / "python"
    if not python.exists():
        raise MediaPipeUnavailableError(
            f"No MediaPipe client environment at {venv_dir()}: {MAKE_HINT}."
        )
    return python


def ensure_venv(timeout: float = 1800) -> Path:
    """Makes the venv with the project's script if needed (fast when it exists) -> interpreter.

    Raises:
        MediaPipeUnavailableError: the script is missing or failed (its message is included).
    """
    if not VENV_SCRIPT.exists():
        raise MediaPipeUnavailableError(
            f"{VENV_SCRIPT} not found (it lives in the source checkout): cannot make the "
            f"MediaPipe client environment at {venv_dir()}."
        )
    env = {**os.environ, "MEDIAPIPE_VENV": str(venv_dir())}
    process = subprocess.run(["bash", str(VENV_SCRIPT)], env=env, capture_output=True, text=True,
                             timeout=timeout, check=False)
    if process.returncode != 0:
        raise MediaPipeUnavailableError(
            f"{VENV_SCRIPT.name} failed (exit {process.returncode}):\n"
            f"{(process.stderr or process.stdout).strip()[-4000:]}"
        )
    return venv_python()


def classify(
    model_path: str | os.PathLike,
    images: Sequence[np.ndarray | str | os.PathLike],
    top_k: int = 5,
    *,
    timeout: float = 600,
    interpreter: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
) -> ClientResult:
    """Classifies `images` with MediaPipe's ImageClassifier (CPU) in the client environment.

    Args:
        model_path: a `.tflite` with TFLite metadata (`ghostnet_keras.tflite.metadata`).
        images: `(H, W, 3)` uint8 RGB arrays or image file paths. MediaPipe stretches each image
            to the model's input size (bilinear, no crop).
        top_k: categories per image.
        timeout: seconds for the whole subprocess.
        interpreter: the command that runs the client script (default: the venv's python), e.g.
            an emulated arm64 Python (`ghostnet_keras.tflite.arm64`); `env` is its environment.

    Raises:
        MediaPipeUnavailableError: no client environment (run `make mediapipe-venv`).
        MediaPipeError: MediaPipe refused the model or an image (its message is included).
        ValueError: an array that is not `(H, W, 3)`.
    """
    python = list(interpreter) if interpreter else [str(venv_python())]
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; received {top_k}.")
    with tempfile.TemporaryDirectory(prefix="mediapipe_client_") as folder:
        paths = []
        for i, image in enumerate(images):
            if isinstance(image, (str, os.PathLike)):
                paths.append(str(image))
                continue
            array = np.asarray(image)
            if array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"Image {i}: expected (H, W, 3) RGB, got shape {array.shape}.")
            path = Path(folder) / f"image_{i}.npy"
            np.save(path, np.clip(np.rint(array), 0, 255).astype(np.uint8))
            paths.append(str(path))
        command = [*python, str(CLIENT), "--model", str(model_path), "--top_k", str(top_k),
                   *paths]
        process = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                 check=False, env=env)
    if process.returncode != 0:
        raise MediaPipeError(
            f"MediaPipe ImageClassifier failed on {model_path} (exit {process.returncode}):\n"
            f"{process.stderr.strip()[-4000:]}"
        )
    output = json.loads(process.stdout)
    return ClientResult(
        mediapipe_version=output["mediapipe"],
        metadata=output["metadata"],
        categories=[
            [Category(c["index"], c["score"], c["category_name"]) for c in result["categories"]]
            for result in output["results"]
        ],
    )
