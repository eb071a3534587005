"""The published ImageNet weights: which variants exist, their URLs, the download cache.

timm's `{variant}.in1k` `model.safetensors` is downloaded once from the Hugging Face hub into
the Keras cache (`$KERAS_HOME/models`, default `~/.keras/models`) and converted once to a Keras
weights file beside it, which is reused afterwards.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import keras

IMAGENET_FILE = "{variant}_in1k.safetensors"
IMAGENET_CONVERTED_FILE = "{variant}_imagenet.weights.h5"
DOWNLOAD_TIMEOUT_S = 60.0

# The published ImageNet weights (timm `ghostnet_100.in1k`, ported from the official
# `state_dict_73.98.pth`): 73.98% top-1 / 91.46% top-5.
HUB_URL = "https://huggingface.co/timm/{variant}.in1k/resolve/main/model.safetensors"
IMAGENET_WEIGHTS_URL = HUB_URL.format(variant="ghostnet_100")
# The timm models with published ImageNet-1k weights, by (version, width).
IMAGENET_VARIANTS = {
    ("v1", 1.0): "ghostnet_100",
    ("v2", 1.0): "ghostnetv2_100",
    ("v2", 1.3): "ghostnetv2_130",
    ("v2", 1.6): "ghostnetv2_160",
    ("v3", 1.0): "ghostnetv3_100",
}

DownloadConverter = Callable[[str, Path], Path]
"""Converts the downloaded reference file (its path) to the Keras weights file at the given
path, written atomically, and returns that path."""


def imagenet_variant(version: str, width: float) -> str | None:
    """The timm variant with ImageNet weights for this version and width, or `None`."""
    for (known_version, known_width), variant in IMAGENET_VARIANTS.items():
        if known_version == version and abs(width - known_width) < 1e-9:
            return variant
    return None


def imagenet_weights_url(variant: str) -> str:
    """The hub URL of a variant's `model.safetensors`."""
    return IMAGENET_WEIGHTS_URL if variant == "ghostnet_100" else HUB_URL.format(variant=variant)


def imagenet_weights_path(variant: str, convert: DownloadConverter) -> Path:
    """Returns the converted ImageNet weights of a timm variant, downloading them once.

    Downloads timm's `{variant}.in1k` `model.safetensors` (e.g. `ghostnet_100`,
    `ghostnetv2_130`, `ghostnetv3_100`) from the Hugging Face hub with `keras.utils.get_file`
    into the Keras cache (`$KERAS_HOME/models`, default `~/.keras/models`) as
    `{variant}_in1k.safetensors`, converts it with `convert` to
    `{variant}_imagenet.weights.h5` beside it and reuses that file afterwards.

    Raises:
        RuntimeError: when the download fails (no network), with what to do instead.
    """
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    cache_dir = keras_home / "models"
    converted = cache_dir / IMAGENET_CONVERTED_FILE.format(variant=variant)
    if converted.exists():
        return converted
    url = imagenet_weights_url(variant)
    hub_file = IMAGENET_FILE.format(variant=variant)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        downloaded = keras.utils.get_file(
            hub_file, url, cache_dir=str(keras_home), cache_subdir="models"
        )
    except Exception as error:  # get_file raises a bare Exception on network errors.
        raise RuntimeError(
            f"Could not download the GhostNet ImageNet weights from {url} ({error}). Without "
            f"network access, download that file elsewhere, then either place it at "
            f"{cache_dir / hub_file} or pass its path: GhostNet(weights='model.safetensors')."
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return convert(downloaded, converted)
