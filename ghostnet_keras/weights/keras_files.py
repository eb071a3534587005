"""`load_keras_file`: `keras.saving.load_model` for `.keras` files that may hold the library's
own layers (importing this module registers them)."""

from __future__ import annotations

import os
from pathlib import Path

import keras

# Registered as serializable when imported: the custom layers a saved model may hold.
from ghostnet_keras.layers.channel_slice import ChannelSlice  # noqa: F401  (`ghostify`)
from ghostnet_keras.layers.nearest_resize import NearestResize  # noqa: F401  (GhostNetV2/V3)


def load_keras_file(path: str | os.PathLike[str], *, compile: bool = False) -> keras.Model:
    """Loads a `.keras` model, GhostNetV2/V3 and ghostified models included.

    Raises:
        FileNotFoundError: `path` is not a file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"No such .keras file: {path}")
    return keras.saving.load_model(path, compile=compile)
