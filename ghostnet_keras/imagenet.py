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
# Inputs with other than 3 channels (grey, RGBA, multispectral; no pretrained weights) are
# normalised channel by channel with the mean of the RGB means and the mean of the RGB stds.
CHANNEL_MEAN = sum(IMAGENET_MEAN) / 3  # 0.449
CHANNEL_STD = sum(IMAGENET_STD) / 3  # 0.226
NUM_CLASSES = 1000


@functools.cache
def class_index() -> tuple[tuple[str, str], ...]:
    """Returns the 1000 ImageNet classes as `(wordnet_id, name)` pairs, in model output order."""
    text = resources.files("ghostnet_keras").joinpath("data/imagenet_class_index.json").read_text()
    table = json.loads(text)
    return tuple((table[str(i)][0], table[str(i)][1]) for i in range(len(table)))


def channel_mean_std(channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the normalisation of a `channels`-channel input in [0, 1].

    3 channels: RGB, the ImageNet mean and std. Any other count (1 for grey, 4 for RGBA, ...):
    `CHANNEL_MEAN` (0.449) and `CHANNEL_STD` (0.226), the averages of the RGB values, for every
    channel.
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"`channels` must be a positive integer; received {channels!r}.")
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (CHANNEL_MEAN,) * channels, (CHANNEL_STD,) * channels


def normalization_constants(channels: int = 3) -> tuple[list[float], list[float]]:
    """Scale and offset that map values in [0, 255] to the reference normalisation.

    `x * scale + offset == (x / 255 - mean) / std`, per channel, with `channel_mean_std`.
    """
    means, stds = channel_mean_std(channels)
    scale = [1.0 / (255.0 * s) for s in stds]
    offset = [-m / s for m, s in zip(means, stds, strict=True)]
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


def normalize_input(x: Any, data_format: str | None = None) -> np.ndarray:
    """Applies the reference normalisation `(x / 255 - mean) / std`, per channel.

    What a model built with `include_preprocessing=True` does inside; use it to feed a model
    built with `include_preprocessing=False`. RGB (3 channels) uses the ImageNet mean/std,
    any other channel count the averaged constants of `channel_mean_std`.

    Args:
        x: array-like of values in [0, 255], a batch `(N, H, W, C)` or one image `(H, W, C)`
            channels last (`(N, C, H, W)` / `(C, H, W)` channels first).
        data_format: `"channels_last"` or `"channels_first"`; `None` (default) uses
            `keras.config.image_data_format()`.

    Returns:
        A float32 `numpy.array` of the same shape.
    """
    from ghostnet_keras.layout import resolve_data_format

    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4):
        raise ValueError(
            f"normalize_input expects an image or a batch of images (3 or 4 dims), got shape "
            f"{x.shape}."
        )
    first = resolve_data_format(data_format) == "channels_first"
    axis = x.ndim - 3 if first else -1
    means, stds = channel_mean_std(x.shape[axis])
    shape = (-1, 1, 1) if first else (-1,)
    mean = np.asarray(means, np.float32).reshape(shape)
    std = np.asarray(stds, np.float32).reshape(shape)
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
