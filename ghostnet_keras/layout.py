"""Data formats: which axis of an image tensor holds the channels, for Keras 3 and tf_keras."""

from __future__ import annotations

import importlib
from types import ModuleType

import keras

DATA_FORMATS = ("channels_last", "channels_first")


def resolve_data_format(data_format: str | None, layers: ModuleType = keras.layers) -> str:
    """`data_format`, checked; `None` gives the default of the Keras that `layers` belongs to.

    `keras.layers` -> `keras.config.image_data_format()`, `tf_keras.layers` ->
    `tf_keras.backend.image_data_format()`: each Keras keeps its own setting.
    """
    if data_format is None:
        package = importlib.import_module(layers.__name__.partition(".")[0])
        data_format = package.backend.image_data_format()
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of {DATA_FORMATS} (or None for the global setting); "
            f"received {data_format!r}."
        )
    return data_format


def channel_axis(data_format: str) -> int:
    """The channel axis of a 4D tensor in `data_format`: 1 (channels first) or -1."""
    return 1 if data_format == "channels_first" else -1
