"""Keras files: `load_keras_file` (`keras.saving.load_model` for `.keras` files that may hold the
library's own layers; importing this module registers them) and `read_keras_weights` (a file's
weights by layer name, without building its model)."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import h5py
import keras
import numpy as np

# Registered as serializable when imported: the custom layers a saved model may hold.
from ghostnet_keras.layers.channel_slice import ChannelSlice  # noqa: F401  (`ghostify`)
from ghostnet_keras.layers.nearest_resize import NearestResize  # noqa: F401  (GhostNetV2/V3)


class KerasFileError(ValueError):
    """A Keras file is unreadable or not a Keras 3 weights file (`WeightsError` to loaders)."""


KERAS_WEIGHTS_MEMBER = "model.weights.h5"
"""The member of a `.keras` archive that holds the weights (the `.weights.h5` layout)."""
MAX_WEIGHTS_BYTES = 16 * 2**30
"""The largest weights member extracted from a `.keras` archive (to a temporary file)."""


def load_keras_file(path: str | os.PathLike[str], *, compile: bool = False) -> keras.Model:
    """Loads a `.keras` model, GhostNetV2/V3 and ghostified models included.

    Raises:
        FileNotFoundError: `path` is not a file.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"No such .keras file: {path}")
    return keras.saving.load_model(path, compile=compile)


def _extract_weights(path: Path, output: IO[bytes]) -> None:
    """Copies a `.keras` archive's weights member to `output` (streamed: bounded memory)."""
    with zipfile.ZipFile(path) as archive:
        if KERAS_WEIGHTS_MEMBER not in archive.namelist():
            raise KerasFileError(f"{path} holds no {KERAS_WEIGHTS_MEMBER}: not a Keras 3 .keras "
                               "file.")
        if archive.getinfo(KERAS_WEIGHTS_MEMBER).file_size > MAX_WEIGHTS_BYTES:
            raise KerasFileError(f"{path}: {KERAS_WEIGHTS_MEMBER} declares more than "
                               f"{MAX_WEIGHTS_BYTES} bytes; refusing to extract it.")
        with archive.open(KERAS_WEIGHTS_MEMBER) as member:
            shutil.copyfileobj(member, output)
    output.seek(0)


@contextmanager
def _weights_store(path: Path) -> Iterator[h5py.Group]:
    """The `layers` group of a `.weights.h5` file or of a `.keras` archive's weights."""
    if not path.is_file():
        raise FileNotFoundError(f"No such Keras weights file: {path}")
    try:
        with tempfile.TemporaryFile() as extracted:
            source: Path | IO[bytes] = path
            if path.name.lower().endswith(".keras"):
                _extract_weights(path, extracted)
                source = extracted
            with h5py.File(source, "r") as handle:
                if not isinstance(handle.get("layers"), h5py.Group):
                    raise KerasFileError(f"{path} has no 'layers' group: not a Keras 3 weights "
                                       "file.")
                yield handle["layers"]
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise KerasFileError(f"cannot read {path}: truncated or not a Keras file ({error}).") \
            from error


def _layer_groups(layers: h5py.Group, path: Path) -> dict[str, h5py.Group]:
    """Layer name -> its `vars` group, for every layer that stores variables.

    Keras 3 keys each layer's store by class (`layers/conv2d_3/vars/0`) and records the layer's
    name in the `name` attribute of `vars`. Only layer stores count (`.../layers/<x>/vars`): a
    seed generator's state is not weights, and a `.keras` file's optimizer lies outside `layers`.
    """
    found: list[tuple[str, h5py.Group]] = []
    layers.visititems(lambda name, obj: found.append((name, obj)) if (
        isinstance(obj, h5py.Group) and len(obj) and name.split("/")[-1] == "vars"
        and (name.count("/") == 1 or name.split("/")[-3] == "layers")
    ) else None)
    groups: dict[str, h5py.Group] = {}
    for store, group in found:
        name = group.attrs.get("name")
        if name is None:
            raise KerasFileError(
                f"{path} records no layer names (written by an older Keras 3): its weights "
                f"can only be matched by position. Re-save it with this Keras "
                "(model.load_weights into the same architecture, then model.save_weights)."
            )
        name = name.decode() if isinstance(name, bytes) else str(name)
        if name in groups:
            raise KerasFileError(f"{path} holds two layers named {name!r} (layers/{store}).")
        groups[name] = group
    return groups


def keras_weight_layer_names(path: str | os.PathLike[str]) -> list[str]:
    """The names of the layers with weights in a `.keras` or `.weights.h5` file."""
    path = Path(path)
    with _weights_store(path) as layers:
        return list(_layer_groups(layers, path))


def read_keras_weights(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """Each layer's weights in a `.keras` or `.weights.h5` file, by layer name.

    The arrays are in the order of `layer.weights` (`vars/0`, `vars/1`, ...). The model is not
    built, so a file of any architecture can be checked against a model before loading.

    Raises:
        FileNotFoundError: `path` is not a file.
        KerasFileError: the file is unreadable, not a Keras 3 weights file, or records no names.
    """
    path = Path(path)
    with _weights_store(path) as layers:
        weights = {}
        for name, group in _layer_groups(layers, path).items():
            if sorted(group) != sorted(str(index) for index in range(len(group))):
                raise KerasFileError(f"{path}: layer {name!r} has variables {sorted(group)}, not "
                                   "0, 1, ...: not a Keras 3 weights file.")
            weights[name] = [np.asarray(group[str(index)]) for index in range(len(group))]
        return weights
