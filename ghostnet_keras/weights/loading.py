"""Loading weights into GhostNet, and saving them: the entry points over every source.

`load_ghostnet_weights` takes `"imagenet"` (`imagenet_cache`), a reference PyTorch checkpoint
(`torch_files`, renamed by `reference_names`) or a Keras file (`keras_files`). Loading is strict
and all-or-nothing, whatever the source (`strict`, docs/loading.md): every tensor of the file is
used and every weight of the model is filled, all checked before any is assigned; otherwise
`WeightsError` names the first missing, unused and mis-shaped tensors and the model keeps its
weights.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ghostnet_keras.layers.blocks_v2v3 import TRAINING_FORM_KEY, TRAINING_FORM_LAYER
from ghostnet_keras.weights.imagenet_cache import imagenet_variant, imagenet_weights_path
from ghostnet_keras.weights.reference_names import reference_layout, timm_state_dict
from ghostnet_keras.weights.strict import (
    HEAD_TENSORS,
    IGNORED_REFERENCE_TENSORS,
    WeightsError,
    assign_layer_weights,
    head_is_ignored,
    refusal,
)
from ghostnet_keras.weights.torch_files import SUPPORTED_SUFFIXES as REFERENCE_SUFFIXES

KERAS_SUFFIXES = (".weights.h5", ".keras")
# GhostNetV3's training form (Keras layer names, reference keys).
_TRAINING_FORM_LAYER = re.compile(TRAINING_FORM_LAYER)

ModelBuilder = Callable[..., keras.Model]
"""Builds a new model of the caller's architecture; keyword arguments override those of
`build_ghostnet` (e.g. `include_top=True, classes=10`). The loaders take one instead of importing
the model module, which imports them."""


def is_training_form(weights: str | os.PathLike) -> bool:
    """Whether `weights` holds a GhostNetV3 in training form (parallel conv-BN branches).

    `"imagenet"` is the published (training-form) weights; reference files are looked up by
    their keys (`*_rpr_*`), Keras files (`.keras`, `.weights.h5`) by their layer names
    (`*_primary0_conv`...).
    """
    if weights == "imagenet":
        return True
    path = os.fspath(weights)
    name = Path(path).name.lower()
    if name.endswith(REFERENCE_SUFFIXES):
        from ghostnet_keras.weights.torch_files import read_state_dict

        return any(TRAINING_FORM_KEY in key for key in read_state_dict(path))
    if name.endswith(KERAS_SUFFIXES):
        from ghostnet_keras.weights.keras_files import keras_weight_layer_names

        return any(_TRAINING_FORM_LAYER.fullmatch(layer)
                   for layer in _read_keras_file(keras_weight_layer_names, path))
    return False


def _read_keras_file(reader: Callable[[str], Any], path: str) -> Any:
    """`reader(path)` (`ghostnet_keras.weights.keras_files`), its errors as `WeightsError`."""
    from ghostnet_keras.weights.keras_files import KerasFileError

    try:
        return reader(path)
    except KerasFileError as error:
        raise WeightsError(str(error)) from error


def load_reference_state_dict(
    model: keras.Model, state_dict: Mapping[str, np.ndarray], source: str = "checkpoint"
) -> None:
    """Loads a reference PyTorch `state_dict` (as NumPy arrays) into a GhostNet, strictly.

    Tensors of the classification head (`HEAD_TENSORS`) are ignored when the model was built
    with `include_top=False`; `num_batches_tracked` entries are always ignored. Any other
    difference is an error and nothing is assigned.

    Args:
        model: a GhostNet built by `ghostnet_keras.GhostNet` (any width, with or without top).
        state_dict: tensor name -> array in the PyTorch layout.
        source: how to name the checkpoint in error messages.

    Raises:
        WeightsError: naming each missing, unexpected or mis-shaped tensor.
    """
    layout = reference_layout(model)
    ignorable = HEAD_TENSORS if head_is_ignored(set(layout)) else ()
    expected = {key for _, entries in layout.values() for key, _, _ in entries}
    missing, misshaped, assignments = [], [], []
    for layer, entries in layout.values():
        values = []
        for key, ref_shape, to_keras in entries:
            if key not in state_dict:
                missing.append(f"missing tensor {key!r} {ref_shape}")
                continue
            tensor = np.asarray(state_dict[key])
            if tuple(tensor.shape) != ref_shape:
                misshaped.append(f"tensor {key!r} has shape {tuple(tensor.shape)}, but layer "
                                 f"{layer.name!r} needs {ref_shape}")
                continue
            values.append(np.ascontiguousarray(to_keras(tensor.astype(np.float32))))
        assignments.append((layer, values))
    unused = [
        f"unexpected tensor {key!r} {tuple(np.shape(value))} is not used by the model"
        for key, value in state_dict.items()
        if key not in expected and not key.startswith(ignorable)
        and not key.endswith(IGNORED_REFERENCE_TENSORS)
    ]
    if missing or unused or misshaped:
        raise refusal(source, model, missing, unused, misshaped)
    for layer, values in assignments:
        layer.set_weights(values)



def load_keras_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads a Keras `.weights.h5` or `.keras` file by layer name, strictly.

    The file's weights are read by layer name without building its model, then assigned with
    `assign_layer_weights` (all-or-nothing; a model without top ignores the file's head).

    Raises:
        WeightsError: when the file does not fit the model or cannot be read.
        ValueError: for another file type.
    """
    path = os.fspath(path)
    if not Path(path).name.lower().endswith(KERAS_SUFFIXES):
        raise ValueError(f"Unsupported weights file {path!r}: expected {KERAS_SUFFIXES}.")
    from ghostnet_keras.weights.keras_files import read_keras_weights

    assign_layer_weights(model, _read_keras_file(read_keras_weights, path), path)


def load_ghostnet_weights(
    model: keras.Model,
    weights: str | os.PathLike,
    *,
    version: str = "v1",
    width: float | None = None,
    build: ModelBuilder | None = None,
) -> None:
    """Loads `weights` (`"imagenet"` or a file path) into a GhostNet model.

    `version` and `width` name the published weights for `"imagenet"`; `build` (a new model of
    the same architecture, see `ModelBuilder`) converts the ImageNet download once.
    Every source is strict and all-or-nothing (docs/loading.md).

    Supported files: `.weights.h5` and `.keras` (Keras), `.safetensors`, `.pth`, `.pt`, `.bin`,
    `.ckpt` (reference PyTorch layout, read without PyTorch).

    Raises:
        WeightsError: when the file does not fit the model (nothing is loaded then).
        ValueError: for an unsupported file type or an unreadable file.
    """
    if weights == "imagenet":
        variant = imagenet_variant(version, 1.0 if width is None else width)
        if variant is None or build is None:
            raise ValueError(f"No ImageNet weights for GhostNet {version} width {width}.")
        cached = imagenet_weights_path(variant, partial(_convert_download, build))
        try:
            load_keras_weights(model, cached)
        except WeightsError as error:
            raise WeightsError(f"{error}\nThe cached ImageNet weights {cached} are damaged or "
                               "not this model's: delete that file to convert the download "
                               "again.") from error
        return
    path = os.fspath(weights)
    name = Path(path).name.lower()
    try:
        if name.endswith(REFERENCE_SUFFIXES):
            from ghostnet_keras.weights.torch_files import read_state_dict

            load_reference_state_dict(model, timm_state_dict(read_state_dict(path)), source=path)
        elif name.endswith(KERAS_SUFFIXES):
            load_keras_weights(model, path)
        else:
            raise ValueError(
                f"Unsupported weights file {path!r}: expected one of "
                f"{KERAS_SUFFIXES + REFERENCE_SUFFIXES}."
            )
    except WeightsError as error:
        if has_training_form(model) and not is_training_form(path):
            raise WeightsError(f"{error}\n{path} has no parallel branches: if it holds a "
                               "GhostNetV3 in deploy form, load it with reparameterized=True."
                               ) from error
        raise


def has_training_form(model: Any) -> bool:
    """Whether `model` is a GhostNetV3 in training form (layers of parallel branches)."""
    return any(_TRAINING_FORM_LAYER.fullmatch(layer.name) for layer in model.layers)


def write_weights_atomically(model: keras.Model, output: str | os.PathLike) -> Path:
    """Saves `model` weights (`.weights.h5`) or the whole model (`.keras`) via a temporary file.

    The file appears at `output` only once it is complete.
    """
    output = Path(output)
    suffix = ".weights.h5" if output.name.endswith(".weights.h5") else ".keras"
    if not output.name.endswith(suffix):
        raise ValueError(f"Output must end with .weights.h5 or .keras; received {output}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=suffix, dir=output.parent)
    os.close(handle)
    try:
        if suffix == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return output


def _convert_download(build: ModelBuilder, downloaded: str, converted: Path) -> Path:
    """The ImageNet download (a reference file) as a Keras weights file at `converted`."""
    model = build(include_top=True, classes=1000, input_shape=(None, None, 3),
                  include_preprocessing=True)  # the full model in training form (GhostNetV3)
    load_ghostnet_weights(model, downloaded)
    return write_weights_atomically(model, converted)
