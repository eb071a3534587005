"""ImageNet-1k constants, `preprocess_input` and `decode_predictions`.

The class index (`data/imagenet_class_index.json`, index -> [WordNet id, name]) ships with the
package, so decoding works offline. Its order is the standard ILSVRC-2012 order (sorted WordNet
ids, identical to tensorflow-datasets' `imagenet2012` labels); the names are the first lemma of
each synset.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLASSES = 1000


@functools.cache
def class_index() -> tuple[tuple[str, str], ...]:
    """Returns the 1000 ImageNet classes as `(wordnet_id, name)` pairs, in model output order."""
    text = resources.files("ghostnet_keras").joinpath("data/imagenet_class_index.json").read_text()
    table = json.loads(text)
    return tuple((table[str(i)][0], table[str(i)][1]) for i in range(len(table)))


def normalization_constants() -> tuple[list[float], list[float]]:
    """Scale and offset that map RGB in [0, 255] to the reference normalisation.

    `x * scale + offset == (x / 255 - mean) / std`, per channel.
    """
    scale = [1.0 / (255.0 * s) for s in IMAGENET_STD]
    offset = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    return scale, offset


def preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """A placeholder method for backward compatibility.

    The preprocessing logic has been included in the GhostNet model
    (`include_preprocessing=True`, the default), so this function is a pass-through: GhostNet
    models take RGB inputs with values in [0, 255]. For a model built with
    `include_preprocessing=False`, normalise with `normalize_input` instead.

    Args:
        x: a floating point `numpy.array` or a tensor.
        data_format: optional data format of the image tensor/array. `None` means the global
            setting `keras.config.image_data_format()` is used (unless you changed it, it uses
            `"channels_last"`). Defaults to `None`.

    Returns:
        Unchanged `numpy.array` or tensor.
    """
    del data_format
    return x


def normalize_input(x: Any) -> np.ndarray:
    """Applies the reference normalisation: `(x / 255 - mean) / std` on RGB, channels last.

    Use it to feed a model built with `include_preprocessing=False`.

    Args:
        x: array-like of RGB values in [0, 255], channels last.

    Returns:
        A float32 `numpy.array` of the same shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"normalize_input expects RGB channels last, got shape {x.shape}.")
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    return (x / 255.0 - mean) / std


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Decodes the prediction of an ImageNet model.

    Args:
        preds: NumPy array (or tensor) of shape `(samples, 1000)`: a batch of predictions.
        top: integer, how many top-guesses to return. Defaults to `5`.

    Returns:
        A list of lists of top class prediction tuples `(class_name, class_description,
        score)`. One list of tuples per sample in batch input.

    Raises:
        ValueError: in case of invalid shape of the `preds` array (must be 2D).
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, {NUM_CLASSES})). Received array with shape: {preds.shape}"
        )
    if top < 1:
        raise ValueError(f"`top` must be >= 1, got {top}.")
    classes = class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results
